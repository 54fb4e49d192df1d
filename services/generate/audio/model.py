"""A loaded neural synthesiser: its instruments, its room, and its network behind the backend."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.generate import metrics
from services.generate.audio.controls import HOP, LOUDNESS_FLOOR_DB, SAMPLE_RATE_HZ
from services.generate.inference.backend import InferenceBackend, ModelSpec

Floats = npt.NDArray[np.float32]

# One network call covers at most this many frames: 600 s, the longest line RenderScore
# accepts (TransferTimbre stops at 60 s), so every served line is one call and plays
# exactly as the network would play it whole. The GRU starts from zero state in every
# call, and the trained one remembers: a call started WARMUP_FRAMES early still differs
# from a continuous run by a few percent of the amplitude scale for seconds after the
# join (measured on cadenza-ddsp v1 with 500 frames of warm-up: 1-2% on one random line,
# 5% on the test's). Longer inputs are still cut, as a guard, never silently refused.
MAX_CALL_FRAMES = 75_000
WARMUP_FRAMES = 500


@dataclass(frozen=True)
class Envelope:
    """An instrument's fitted loudness curves (training/audio/envelope.py), in dB.

    attack_db: level by frames since the onset (the last value holds after it);
    release_db: change from the level at note-off by frames after it; db_per_velocity:
    how much louder each velocity step above reference_velocity plays.
    """

    attack_db: Floats
    release_db: Floats
    db_per_velocity: float
    reference_velocity: float


@dataclass(frozen=True)
class Instrument:
    """One trained timbre: its API name, GM program, playable range and embedding."""

    name: str
    program: int
    low: int
    high: int
    embedding: Floats
    envelope: Envelope

    @property
    def middle(self) -> float:
        """The middle of the playable range (MIDI pitch)."""
        return (self.low + self.high) / 2.0


def _instrument(data: dict[str, Any]) -> Instrument:
    envelope = data["envelope"]
    return Instrument(
        name=str(data["name"]), program=int(data["program"]), low=int(data["low"]),
        high=int(data["high"]),
        embedding=np.asarray(data["embedding"], np.float32),
        envelope=Envelope(attack_db=np.asarray(envelope["attack_db"], np.float32),
                          release_db=np.asarray(envelope["release_db"], np.float32),
                          db_per_velocity=float(envelope["db_per_velocity"]),
                          reference_velocity=float(envelope["reference_velocity"])))


class AudioModel:
    """An audio model ready to serve: instruments by name, the learned room, the network."""

    def __init__(self, spec: ModelSpec, backend: InferenceBackend) -> None:
        audio = spec.synthesiser
        if audio.sample_rate_hz != SAMPLE_RATE_HZ or audio.hop != HOP:
            # The controls and the DSP are fixed to one frame grid; a model trained on
            # another would play at the wrong speed and pitch.
            raise ValueError(f"{spec.name} runs at {audio.sample_rate_hz} Hz, hop "
                             f"{audio.hop}; this service serves {SAMPLE_RATE_HZ} Hz, hop {HOP}")
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.backend = backend
        self.instruments = {i.name: i for i in (_instrument(x) for x in audio.instruments)}
        self.impulse_response: Floats = np.load(audio.reverb_file).astype(np.float32)
        self.n_harmonics = audio.n_harmonics
        self.n_noise_bands = audio.n_noise_bands

    async def frames(self, f0_hz: Floats, loudness_db: Floats, timbre: Floats
                     ) -> tuple[Floats, Floats]:
        """(amplitudes [T, 64], noise [T, 65]) of one voice's controls ([T] each)."""
        n_frames = int(f0_hz.size)
        amplitudes = np.empty((n_frames, self.n_harmonics), np.float32)
        noise = np.empty((n_frames, self.n_noise_bands), np.float32)
        for first in range(0, n_frames, MAX_CALL_FRAMES):
            start = max(0, first - WARMUP_FRAMES)
            end = min(n_frames, first + MAX_CALL_FRAMES)
            out = await self._call(f0_hz[start:end], loudness_db[start:end], timbre)
            amplitudes[first:end] = out[0][first - start:]
            noise[first:end] = out[1][first - start:]
        return amplitudes, noise

    async def _call(self, f0_hz: Floats, loudness_db: Floats, timbre: Floats
                    ) -> tuple[Floats, Floats]:
        started = time.perf_counter()
        out = await self.backend.run(self.name, {
            "f0_hz": np.ascontiguousarray(f0_hz, np.float32)[None],
            "loudness_db": np.ascontiguousarray(loudness_db, np.float32)[None],
            "timbre": np.ascontiguousarray(timbre, np.float32)[None]})
        metrics.INFERENCE_SECONDS.labels(self.backend.name, self.name).observe(
            time.perf_counter() - started)
        amplitudes, noise = out["amplitudes"][0], out["noise"][0]
        expected = ((f0_hz.size, self.n_harmonics), (f0_hz.size, self.n_noise_bands))
        if (amplitudes.shape, noise.shape) != expected:
            raise RuntimeError(f"{self.name} returned {amplitudes.shape} and {noise.shape}; "
                               f"expected {expected}")
        return amplitudes.astype(np.float32), noise.astype(np.float32)

    async def warm_up(self) -> None:
        """One short real call, so the first caller does not pay for the session's start."""
        first = next(iter(self.instruments.values()))
        frames = 16
        await self._call(np.full(frames, 220.0, np.float32),
                         np.full(frames, LOUDNESS_FLOOR_DB / 2, np.float32), first.embedding)
