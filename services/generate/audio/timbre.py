"""Timbres: one trained instrument, or a weighted mix of them, A(x) = sum_i w_i a_i(x).

A mix plays the weighted mean of the instruments' embeddings (the network was trained
on single embeddings; their means interpolate between the timbres), with the weighted
mean of their loudness envelopes and the playable range of its heaviest instrument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_weights, cut, shown
from services.generate.audio.model import Envelope, Instrument

Floats = npt.NDArray[np.float32]
MAX_MIX = 16
# General MIDI program families (0-based programs) and the trained instruments that play
# them; a program outside these is played by the instrument nearest its register.
FAMILIES: tuple[tuple[range, tuple[str, ...]], ...] = (
    (range(40, 48), ("violin", "cello")),     # strings: by register
    (range(52, 55), ("choir",)),              # choir aahs, voice oohs, synth voice
    (range(56, 64), ("trumpet",)),            # brass
    (range(64, 72), ("clarinet",)),           # reeds
    (range(72, 80), ("flute",)),              # pipes
)


@dataclass(frozen=True)
class TimbreChoice:
    """What a caller asked for: an instrument name or weights over names (names unchecked).

    Neither set means the caller sent an empty Timbre.
    """

    instrument: str | None = None
    weights: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True)
class Mix:
    """A resolved timbre: weights (sum 1, zeros left out), embedding, envelope and range."""

    weights: dict[str, float]
    embedding: Floats
    envelope: Envelope
    low: int
    high: int

    @property
    def middle(self) -> float:
        """The middle of the playable range (MIDI pitch)."""
        return (self.low + self.high) / 2.0


def check_choice(field: str, choice: TimbreChoice) -> TimbreChoice:
    """The checks that need no model: a choice made, a name given, weights finite, >= 0,
    at most MAX_MIX and not all zero. InvalidArgument names the field."""
    if choice.instrument is None and choice.weights is None:
        raise InvalidArgument(field, "give an instrument or a mix")
    if choice.instrument is not None:
        if not choice.instrument:
            raise InvalidArgument(f"{field}.instrument",
                                  "is empty; use an instrument name from ListModels")
        return choice
    weights = choice.weights or ()
    where = f"{field}.mix.weights"
    if len(weights) > MAX_MIX:
        raise InvalidArgument(where, f"has {len(weights)} weights; at most {MAX_MIX}")
    for name, value in weights:
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"{where}[{cut(name)}]",
                                  f"must be a finite number >= 0, got {value}")
    if not any(value > 0 for _, value in weights):
        raise InvalidArgument(where, "all weights are zero; give at least one instrument a "
                                     "positive weight")
    return choice


def resolve(field: str, choice: TimbreChoice, instruments: Mapping[str, Instrument]) -> Mix:
    """The Mix a checked choice names; InvalidArgument for an unknown name (with the known)."""
    check_choice(field, choice)
    if choice.instrument is not None:
        instrument = instruments.get(choice.instrument)
        if instrument is None:
            raise InvalidArgument(f"{field}.instrument",
                                  f"unknown instrument {shown(choice.instrument)}; use one "
                                  f"of {', '.join(sorted(instruments))}")
        return solo(instrument)
    normalised = check_weights(f"{field}.mix.weights", dict(choice.weights or ()),
                               {name: 0.0 for name in instruments})
    return mix({name: w for name, w in normalised.items() if w > 0}, instruments)


def solo(instrument: Instrument) -> Mix:
    """One instrument as a Mix of weight 1."""
    return Mix({instrument.name: 1.0}, instrument.embedding, instrument.envelope,
               instrument.low, instrument.high)


def mix(weights: Mapping[str, float], instruments: Mapping[str, Instrument]) -> Mix:
    """The weighted mean of the named instruments (weights > 0 summing to 1)."""
    order = list(instruments)
    chosen = [instruments[name] for name in order if name in weights]
    w = np.array([weights[i.name] for i in chosen], np.float64)
    heaviest = chosen[int(np.argmax(w))]  # ties: the first in the model's order
    embedding = np.tensordot(w, np.stack([i.embedding for i in chosen]), axes=1)
    envelope = Envelope(
        attack_db=_mean_curve(w, [i.envelope.attack_db for i in chosen]),
        release_db=_mean_curve(w, [i.envelope.release_db for i in chosen]),
        db_per_velocity=float(np.dot(w, [i.envelope.db_per_velocity for i in chosen])),
        reference_velocity=float(np.dot(w, [i.envelope.reference_velocity for i in chosen])))
    return Mix({i.name: float(x) for i, x in zip(chosen, w, strict=True)},
               embedding.astype(np.float32), envelope, heaviest.low, heaviest.high)


def _mean_curve(weights: npt.NDArray[np.float64], curves: list[Floats]) -> Floats:
    """Weighted mean of curves, a shorter one held at its last value."""
    length = max(c.size for c in curves)
    padded = np.stack([np.pad(c, (0, length - c.size), mode="edge") for c in curves])
    return np.tensordot(weights, padded, axes=1).astype(np.float32)


def default_instrument(program: int, median_pitch: float,
                       instruments: Mapping[str, Instrument]) -> Instrument:
    """The trained instrument nearest a GM program: its family's (the nearest register
    among them), else the one whose range is centred nearest the voice's median pitch."""
    names = next((names for programs, names in FAMILIES if program in programs), ())
    candidates = [instruments[n] for n in names if n in instruments] or list(
        instruments.values())
    return min(candidates, key=lambda i: abs(i.middle - median_pitch))
