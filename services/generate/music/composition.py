"""What a caller asked for, checked: mode, length, tempo, key, metre, voices, sampling."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import shown
from services.generate.audio.timbre import TimbreChoice, check_choice
from services.generate.inference.sampling import Sampling
from services.generate.music.tokens import PITCH_NAMES, parse_time_signature, steps_per_bar

MAX_BARS = 128
MAX_SECONDS = 600.0
DEFAULT_BARS = 8
DEFAULT_TEMPO_BPM = 100.0
MIN_TEMPO_BPM, MAX_TEMPO_BPM = 20.0, 300.0
MAX_TOP_K = 1000
MAX_TEMPERATURE = 10.0   # already near uniform sampling; above it only noise
MAX_PROGRAMS = 16        # one per MIDI channel
# What one generation may cost, however the controls combine: every step is decoded, so
# steps bound the tokens and the time; seconds bound the audio rendered. 128 bars of 4/4.
MAX_BAR_QUARTERS = 16
MAX_MUSIC_QUARTERS = 512

_TONICS = {name.lower(): index for index, name in enumerate(PITCH_NAMES)}
_TONICS.update({"db": 1, "d#": 3, "gb": 6, "g#": 8, "a#": 10, "cb": 11, "e#": 5, "fb": 4,
                "b#": 0})
_KEY = re.compile(r"^\s*([A-Ga-g][#b]?)\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE)


class Mode(enum.Enum):
    """What a generation starts from: nothing, a primer to continue, or a melody to harmonise."""

    SCRATCH = "scratch"
    CONTINUE = "continue"
    HARMONIZE = "harmonize"


@dataclass(frozen=True)
class Composition:
    """A checked generation request; unset fields come from the primer or the defaults."""

    model: str
    mode: Mode
    primer_midi: bytes = b""
    bars: int | None = None
    seconds: float | None = None
    tempo_bpm: float | None = None
    key: tuple[int, bool] | None = None
    time_signature: str | None = None
    programs: tuple[int, ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    seed: int | None = None
    audio_format: str | None = None   # "wav" | "flac"
    # Who plays that audio: FluidSynth ("sampler") or the neural synthesiser ("neural"),
    # with the timbres and audio model below (neural only).
    renderer: str = "sampler"
    timbre: TimbreChoice | None = None
    voice_timbres: tuple[TimbreChoice, ...] = ()
    audio_model: str = ""

    def steps(self, tempo_bpm: float, steps_per_quarter: int, bar_steps: int) -> int:
        """Length in steps of the part to write (bars or seconds; DEFAULT_BARS when unset)."""
        if self.seconds is not None:
            quarters = self.seconds * tempo_bpm / 60.0
            return max(1, round(quarters * steps_per_quarter))
        return (self.bars or DEFAULT_BARS) * bar_steps


def parse_key(text: str) -> tuple[int, bool] | None:
    """'F# minor' -> (6, True); 'Bb' -> (10, False); '' -> None."""
    if not text.strip():
        return None
    match = _KEY.match(text)
    if not match or match.group(1).lower() not in _TONICS:
        raise InvalidArgument("key", f"{shown(text)} is not a key; write e.g. 'C', 'F# minor', "
                              "'Bb major'")
    mode = (match.group(2) or "major").lower()
    return _TONICS[match.group(1).lower()], mode in ("minor", "min", "m")


def check(composition: Composition) -> Composition:
    """Raises InvalidArgument naming the first control out of range."""
    c = composition
    if c.mode is not Mode.SCRATCH and not c.primer_midi:
        raise InvalidArgument("primer_midi", f"mode {c.mode.value} needs a MIDI primer")
    if c.bars is not None and not 1 <= c.bars <= MAX_BARS:
        raise InvalidArgument("bars", f"must be 1-{MAX_BARS}, got {c.bars}")
    if c.seconds is not None and not 0 < c.seconds <= MAX_SECONDS:
        raise InvalidArgument("seconds", f"must be in (0, {MAX_SECONDS:g}], got {c.seconds}")
    if c.tempo_bpm is not None and not MIN_TEMPO_BPM <= c.tempo_bpm <= MAX_TEMPO_BPM:
        raise InvalidArgument("tempo_bpm", f"must be {MIN_TEMPO_BPM:g}-{MAX_TEMPO_BPM:g}, "
                              f"got {c.tempo_bpm}")
    if c.time_signature is not None:
        try:
            steps_per_bar(c.time_signature)
        except ValueError as error:
            raise InvalidArgument("time_signature", f"{error}; write e.g. 4/4, 3/4, 6/8") from None
        check_bar("time_signature", c.time_signature)
    if len(c.programs) > MAX_PROGRAMS:
        raise InvalidArgument("programs", f"at most {MAX_PROGRAMS} (one per MIDI channel), "
                                          f"got {len(c.programs)}")
    for index, program in enumerate(c.programs):
        if not 0 <= program <= 127:
            raise InvalidArgument(f"programs[{index}]", f"General MIDI programs are 0-127, "
                                  f"got {program}")
    s = c.sampling
    if not 0 < s.temperature <= MAX_TEMPERATURE:
        raise InvalidArgument("sampling.temperature", f"must be in (0, {MAX_TEMPERATURE:g}], "
                                                      f"got {s.temperature}")
    if not 0 < s.top_p <= 1:
        raise InvalidArgument("sampling.top_p", f"must be in (0, 1], got {s.top_p}")
    if not 0 <= s.top_k <= MAX_TOP_K:
        raise InvalidArgument("sampling.top_k", f"must be 0 (off) to {MAX_TOP_K}, got {s.top_k}")
    _check_renderer(c)
    if c.mode is Mode.SCRATCH:  # else the primer may set tempo and metre: see the composer
        tempo = c.tempo_bpm or DEFAULT_TEMPO_BPM
        quarters = (c.seconds * tempo / 60.0 if c.seconds is not None
                    else (c.bars or DEFAULT_BARS) * bar_quarters(c.time_signature or "4/4"))
        check_cost(length_field(c), quarters, tempo)
    return c


def _check_renderer(c: Composition) -> None:
    """The neural renderer's fields are for it alone; its timbres must be well formed."""
    if c.renderer != "neural":
        for field, value in (("timbre", c.timbre), ("voice_timbres", c.voice_timbres),
                             ("audio_model", c.audio_model)):
            if value:
                raise InvalidArgument(field, "only with renderer RENDERER_NEURAL")
    if len(c.voice_timbres) > MAX_PROGRAMS:
        raise InvalidArgument("voice_timbres", f"at most {MAX_PROGRAMS} (one per voice), "
                                               f"got {len(c.voice_timbres)}")
    if c.timbre is not None:
        check_choice("timbre", c.timbre)
    for index, choice in enumerate(c.voice_timbres):
        check_choice(f"voice_timbres[{index}]", choice)


def check_bar(field: str, time_signature: str) -> None:
    """Raises InvalidArgument when one bar of the metre is longer than MAX_BAR_QUARTERS."""
    quarters = bar_quarters(time_signature)
    if quarters > MAX_BAR_QUARTERS:
        raise InvalidArgument(field, f"a bar of {time_signature} is {quarters:g} quarter notes; "
                                     f"at most {MAX_BAR_QUARTERS} (e.g. 16/4)")


def check_cost(field: str, quarters: float, tempo_bpm: float) -> None:
    """Raises InvalidArgument when the music to write is over the per-generation bound.

    check() applies it when the request alone fixes the length; the composer applies it
    again once a primer has supplied tempo and metre, so no combination of bars, seconds,
    time signature, tempo and primer can ask for more.
    """
    seconds = quarters * 60.0 / tempo_bpm
    if quarters > MAX_MUSIC_QUARTERS or seconds > MAX_SECONDS:
        raise InvalidArgument(field, (
            f"this asks for {quarters:g} quarter notes ({seconds:.0f} s) of music; one "
            f"generation writes at most {MAX_MUSIC_QUARTERS} quarter notes and "
            f"{MAX_SECONDS:g} s: ask for fewer bars or seconds, a shorter bar or a faster "
            "tempo"))


def bar_quarters(time_signature: str) -> float:
    """Quarter notes in one bar: 4 for 4/4, 3 for 6/8."""
    numerator, denominator = parse_time_signature(time_signature)
    return numerator * 4 / denominator


def length_field(composition: Composition) -> str:
    """The control that sets the length, for messages about it."""
    return "seconds" if composition.seconds is not None else "bars"
