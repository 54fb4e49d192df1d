"""The instruments the synthesiser learns: General MIDI programs and playable ranges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """One timbre: its name in the API, its GM program (0-based) and its range (MIDI)."""

    name: str
    program: int
    low: int
    high: int


# Ranges are the comfortable written ranges (a little inside the extremes), so melodies
# moved by octaves into them sound like the instrument rather than its edges.
INSTRUMENTS = (
    Instrument("violin", 40, 55, 96),
    Instrument("cello", 42, 36, 72),
    Instrument("flute", 73, 60, 93),
    Instrument("clarinet", 71, 50, 86),
    Instrument("trumpet", 56, 55, 81),
    Instrument("choir", 52, 48, 76),
)
