"""How fast feature extraction runs: seconds of audio analysed per CPU second, per group."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from services.retrieval.audio_decoding import SAMPLE_RATE_HZ
from services.retrieval.features import (
    brightness_features,
    compute_spectra,
    extract_features,
    harmony_features,
    key_features,
    loudness_features,
    pitch_features,
    rhythm_features,
    timbre_features,
)

# Each stage is repeated until it has used at least this much CPU time, so that
# process_time's resolution and one-off cache misses do not dominate a fast stage.
MIN_CPU_S_PER_STAGE = 0.5


def measure_extraction_speed(
    clip_s: float = 30.0, min_cpu_s_per_stage: float = MIN_CPU_S_PER_STAGE
) -> dict[str, float]:
    """Audio seconds processed per CPU second (time.process_time), warm, on a synthetic clip.

    Rows: "spectra" (the STFT, mel spectrogram and frame levels every group shares), one
    row per feature group measuring only that group's own work on top of the shared
    spectra, and "total" (extract_features end to end). Higher is faster; 1.0 is real time.
    """
    samples = benchmark_clip(clip_s)
    features = extract_features(samples)  # warm-up: numba compiles librosa's kernels here
    spectra = compute_spectra(samples)
    stages: dict[str, Callable[[], object]] = {
        "spectra": lambda: compute_spectra(samples),
        "timbre": lambda: timbre_features(spectra),
        "harmony": lambda: harmony_features(spectra),
        "rhythm": lambda: rhythm_features(spectra),
        "loudness": lambda: loudness_features(spectra),
        "brightness": lambda: brightness_features(spectra),
        "pitch": lambda: pitch_features(spectra),
        "key": lambda: key_features(features.chroma_mean),
        "total": lambda: extract_features(samples),
    }
    return {
        name: clip_s / _cpu_seconds_per_call(stage, min_cpu_s_per_stage)
        for name, stage in stages.items()
    }


def benchmark_clip(clip_s: float = 30.0, seed: int = 0) -> np.ndarray:
    """A deterministic music-like clip: a I-IV-V-I progression of harmonic tones with a
    melody, a click on every beat at 100 BPM, and a little noise."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(int(clip_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    audio = np.zeros_like(time_s)
    chords = ([60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67])
    melody = [72, 74, 76, 77, 79, 77, 76, 74]
    beat_s = 60.0 / 100.0
    for beat in range(int(clip_s / beat_s)):
        start = int(beat * beat_s * SAMPLE_RATE_HZ)
        stop = min(time_s.size, start + int(beat_s * SAMPLE_RATE_HZ))
        local_s = time_s[: stop - start]
        envelope = np.exp(-3.0 * local_s)
        pitches = [*chords[(beat // 4) % 4], melody[beat % 8]]
        for midi_note in pitches:
            frequency_hz = 440.0 * 2.0 ** ((midi_note - 69) / 12)
            for harmonic in (1, 2, 3):
                audio[start:stop] += (
                    0.05
                    / harmonic
                    * envelope
                    * np.sin(2 * np.pi * harmonic * frequency_hz * local_s)
                )
        click = min(200, stop - start)
        audio[start : start + click] += (
            0.3 * rng.standard_normal(click) * np.exp(-np.arange(click) / 40)
        )
    audio += 0.003 * rng.standard_normal(audio.size)
    clip: np.ndarray = (0.8 * audio / np.max(np.abs(audio))).astype(np.float32)
    return clip


def _cpu_seconds_per_call(stage: Callable[[], object], min_cpu_s: float) -> float:
    calls = 0
    started = time.process_time()
    while True:
        stage()
        calls += 1
        elapsed = time.process_time() - started
        if elapsed >= min_cpu_s:
            return elapsed / calls
