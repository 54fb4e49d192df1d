"""Inputs for the synthesiser's tests: small MIDI scores, synthetic recordings, the model."""

from __future__ import annotations

import io
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pretty_midi
import soundfile

from tests.generate.test_service import MODELS_DIR

AUDIO_MODEL = "cadenza-ddsp"
AUDIO_DIR = MODELS_DIR / AUDIO_MODEL
SAMPLE_RATE_HZ = 16000
HOP = 128


def model_json() -> dict[str, Any]:
    """The synthesiser's model.json."""
    data: dict[str, Any] = json.loads((AUDIO_DIR / "model.json").read_text())
    return data


def models_folder(tmp: pathlib.Path, *names: str) -> pathlib.Path:
    """A models folder holding links to the named model folders only."""
    folder = tmp / "models"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to((MODELS_DIR / name).resolve())
    return folder


Part = tuple[int, Sequence[tuple[int, float, float]]]   # program, (pitch, start_s, end_s)


def score(*parts: Part, velocity: int = 90, drums: Sequence[tuple[int, float, float]] = ()
          ) -> bytes:
    """A Standard MIDI File with one instrument per part (and a drum track if given)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for program, notes in parts:
        instrument = pretty_midi.Instrument(program=program)
        instrument.notes = [pretty_midi.Note(velocity=velocity, pitch=p, start=s, end=e)
                            for p, s, e in notes]
        midi.instruments.append(instrument)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(velocity=velocity, pitch=p, start=s, end=e)
                     for p, s, e in drums]
        midi.instruments.append(kit)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def scale(first: int, count: int, note_s: float = 0.5) -> list[tuple[int, float, float]]:
    """`count` notes rising by whole tones (five, then again from `first`), each `note_s`
    apart and a little detached."""
    return [(first + 2 * (i % 5), i * note_s, (i + 0.9) * note_s) for i in range(count)]


def expected_samples(midi: bytes) -> int:
    """Samples a rendering of a score has: the frames up to where its last note ends (as
    pretty_midi reads the file) and the longest release, through the oscillators, plus the
    room's tail."""
    end_s = float(max(n.end for i in pretty_midi.PrettyMIDI(io.BytesIO(midi)).instruments
                      for n in i.notes))
    release = max(len(i["envelope"]["release_db"]) for i in model_json()["instruments"])
    room = int(np.load(AUDIO_DIR / str(model_json().get("reverb", "reverb.npy"))).size)
    frames = math.ceil(end_s * SAMPLE_RATE_HZ / HOP) + release
    return frames * HOP + room - 1


def tone(f0_hz: float | npt.NDArray[np.float64], seconds: float, rate_hz: int = SAMPLE_RATE_HZ,
         level: float = 0.3) -> npt.NDArray[np.float32]:
    """A sine (or, for an array of per-sample frequencies, a glide) with soft edges."""
    n = int(seconds * rate_hz)
    frequency = np.broadcast_to(np.asarray(f0_hz, np.float64), (n,))
    phase = np.cumsum(2.0 * np.pi * frequency / rate_hz)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.02 * rate_hz))
    return (level * fade * np.sin(phase)).astype(np.float32)


def encoded(samples: npt.NDArray[np.float32], rate_hz: int = SAMPLE_RATE_HZ,
            fmt: str = "WAV", subtype: str | None = None) -> bytes:
    """Samples as file bytes (soundfile), e.g. WAV, FLAC, OGG or AIFF."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def decoded(audio: bytes) -> tuple[npt.NDArray[np.float64], int]:
    """File bytes as (samples, rate)."""
    samples, rate = soundfile.read(io.BytesIO(audio))
    return samples, int(rate)


def median_pitch_hz(samples: npt.NDArray[np.float64], rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """pYIN's median f0 over the frames it finds voiced (nan when none are)."""
    import librosa

    f0, voiced, _ = librosa.pyin(samples.astype(np.float32), fmin=50, fmax=2000, sr=rate_hz,
                                 frame_length=1024, hop_length=512, resolution=0.2)
    return float(np.median(f0[voiced])) if voiced.any() else math.nan


def cents(f0_hz: float, reference_hz: float) -> float:
    """How far f0 is from the reference, in cents."""
    return 1200.0 * math.log2(f0_hz / reference_hz)
