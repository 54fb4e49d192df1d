"""What a description may say about a piece: facts measured, and the words for them.

The words come from fixed bands so a description and a test can agree on them: a track
at 72 bpm is "slow", never "lively". Facts come from the catalog's audio features and
metadata, or from a MIDI file's notes, tempo and programs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pretty_midi

from cadenza.kit.errors import InvalidArgument
from services.generate.music.keys import estimate_key
from services.generate.music.tokens import PITCH_NAMES

# (upper bound, word): the first band whose bound is above the value.
TEMPO_WORDS = ((60.0, "very slow"), (76.0, "slow"), (108.0, "moderate"), (140.0, "fast"),
               (float("inf"), "very fast"))
LOUDNESS_WORDS = ((-30.0, "quiet"), (-16.0, "moderate"), (float("inf"), "loud"))
BRIGHTNESS_WORDS = ((1500.0, "dark"), (3000.0, "warm"), (float("inf"), "bright"))
MAX_MIDI_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class MusicFacts:
    """A piece's facts; empty strings and 0 where unknown."""

    title: str = ""
    artist: str = ""
    genre: str = ""
    tags: tuple[str, ...] = ()
    year: int | None = None
    description: str = ""      # the catalog's own text about the track
    key: str = ""              # "D"
    mode: str = ""             # "minor"
    tempo_bpm: float = 0.0
    loudness_db: float | None = None
    brightness_hz: float | None = None
    instruments: tuple[str, ...] = ()
    duration_s: float = 0.0

    @property
    def tempo_word(self) -> str:
        """The tempo band's word; empty when the tempo is unknown."""
        return band(TEMPO_WORDS, self.tempo_bpm) if self.tempo_bpm > 0 else ""

    @property
    def loudness_word(self) -> str:
        """The loudness band's word; empty without audio."""
        return "" if self.loudness_db is None else band(LOUDNESS_WORDS, self.loudness_db)

    @property
    def brightness_word(self) -> str:
        """The brightness band's word; empty without audio."""
        return "" if self.brightness_hz is None else band(BRIGHTNESS_WORDS, self.brightness_hz)

    def lines(self) -> list[str]:
        """The facts as short "name: value" lines, for the prompt."""
        out = [f"{name}: {value}" for name, value in (
            ("title", self.title), ("artist", self.artist), ("genre", self.genre),
            ("tags", ", ".join(self.tags)), ("year", self.year or ""),
            ("key", f"{self.key} {self.mode}".strip()), ("tempo", self.tempo_word),
            ("loudness", self.loudness_word), ("brightness", self.brightness_word),
            ("instruments", ", ".join(self.instruments))) if value]
        if self.tempo_bpm:
            out.append(f"beats per minute: {self.tempo_bpm:.0f}")
        return out


def band(bands: tuple[tuple[float, str], ...], value: float) -> str:
    """The word of the first band whose upper bound is above the value."""
    return next(word for bound, word in bands if value < bound)


def midi_facts(data: bytes) -> MusicFacts:
    """Facts of a Standard MIDI file: key from its notes, tempo, programs, duration."""
    if not data:
        raise InvalidArgument("midi", "is empty; send a Standard MIDI file")
    if len(data) > MAX_MIDI_BYTES:
        raise InvalidArgument("midi", f"is over {MAX_MIDI_BYTES} bytes")
    try:
        midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:  # pretty_midi/mido raise many types on bad files
        raise InvalidArgument("midi", f"is not a readable Standard MIDI file ({error})") from None
    notes = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        raise InvalidArgument("midi", "has no notes")
    tonic, minor = estimate_key([n.pitch for n in notes], [n.end - n.start for n in notes])
    _, tempi = midi.get_tempo_changes()
    names = []
    for inst in midi.instruments:
        name = "drums" if inst.is_drum else pretty_midi.program_to_instrument_name(inst.program)
        if name.lower() not in names:
            names.append(name.lower())
    return MusicFacts(key=PITCH_NAMES[tonic], mode="minor" if minor else "major",
                      tempo_bpm=float(np.median(tempi)) if len(tempi) else 120.0,
                      instruments=tuple(names), duration_s=float(midi.get_end_time()))
