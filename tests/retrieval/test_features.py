"""Audio decoding, feature extraction and feature blocks, on audio synthesised here."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile

from services.retrieval.audio_decoding import SAMPLE_RATE_HZ, decode_audio
from services.retrieval.errors import (
    AudioDecodeError,
    AudioEmptyError,
    AudioError,
    AudioSilentError,
    AudioTooShortError,
)
from services.retrieval.feature_blocks import feature_blocks
from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.feature_speed import measure_extraction_speed
from services.retrieval.features import extract_features, features_from_bytes
from services.retrieval.model import AudioFeatures

SR = SAMPLE_RATE_HZ
C_MAJOR_CADENCE = ([60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67])  # I IV V I
A_MINOR_CADENCE = ([57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64])  # i iv V i


def tone(frequency_hz: float, duration_s: float = 4.0, amplitude: float = 0.5, sr: int = SR):
    time_s = np.arange(int(duration_s * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * frequency_hz * time_s)).astype(np.float32)


def sawtooth(frequency_hz: float, duration_s: float = 4.0, amplitude: float = 0.5):
    time_s = np.arange(int(duration_s * SR)) / SR
    return (amplitude * (2.0 * ((frequency_hz * time_s) % 1.0) - 1.0)).astype(np.float32)


def click_track(bpm: float, duration_s: float = 12.0):
    audio = np.zeros(int(duration_s * SR), dtype=np.float32)
    n = np.arange(300)
    click = 0.8 * np.sin(2 * np.pi * 1000 * n / SR) * np.exp(-n / 60)
    beat_s = 60.0 / bpm
    for beat in range(int(duration_s / beat_s)):
        start = int(beat * beat_s * SR)
        audio[start : start + n.size] += click[: audio.size - start]
    return audio


def chord_sequence(chords, repeats: int = 3, chord_s: float = 1.0):
    time_s = np.arange(int(chord_s * SR)) / SR
    envelope = np.minimum(1.0, time_s * 50) * np.exp(-1.5 * time_s)
    pieces = []
    for chord in list(chords) * repeats:
        pieces.append(
            sum(
                0.2 * envelope * np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * time_s)
                for m in chord
            )
        )
    return np.concatenate(pieces).astype(np.float32)


TUNE_A = [60, 62, 64, 65, 67, 69, 71, 72] * 2
TUNE_B = [67, 64, 60, 64, 67, 72, 67, 64] * 2
MELLOW = (1.0, 0.3, 0.1)  # relative harmonic amplitudes: flute-like
BRIGHT = tuple(1.0 / h for h in range(1, 16))  # sawtooth-like, brass-ish


def melody(notes, harmonics, note_s: float = 0.4, amplitude: float = 0.5):
    time_s = np.arange(int(note_s * SR)) / SR
    envelope = np.minimum(1.0, time_s * 100) * np.exp(-4.0 * time_s)
    pieces = []
    for midi_note in notes:
        f0_hz = 440 * 2 ** ((midi_note - 69) / 12)
        pieces.append(
            envelope
            * sum(a * np.sin(2 * np.pi * h * f0_hz * time_s) for h, a in enumerate(harmonics, 1))
        )
    audio = np.concatenate(pieces)
    return (amplitude * audio / np.max(np.abs(audio))).astype(np.float32)


def noise(duration_s: float = 4.0, amplitude: float = 0.2, seed: int = 0):
    return (amplitude * np.random.default_rng(seed).standard_normal(int(duration_s * SR))).astype(
        np.float32
    )


def encoded(samples: np.ndarray, sr: int, audio_format: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sr, format=audio_format, subtype=subtype)
    return buffer.getvalue()


def similarity(a: AudioFeatures, b: AudioFeatures, group: str) -> float:
    return float(feature_blocks(a)[group] @ feature_blocks(b)[group])


@pytest.fixture(scope="module")
def tone_features() -> AudioFeatures:
    return extract_features(tone(220.0))  # the first call also warms numba up


@pytest.fixture(scope="module")
def stereo_tone_44k() -> np.ndarray:
    # 220 Hz on the left, 330 Hz on the right: the mono mix must hold both.
    return np.stack([tone(220.0, 3.0, 0.4, sr=44100), tone(330.0, 3.0, 0.4, sr=44100)], axis=1)


# Decoding


@pytest.mark.parametrize(
    ("audio_format", "subtype"),
    [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")],
)
def test_decode_reads_stereo_44k_as_mono_22k(stereo_tone_44k, audio_format, subtype):
    samples = decode_audio(encoded(stereo_tone_44k, 44100, audio_format, subtype))

    assert samples.dtype == np.float32 and samples.ndim == 1
    # MP3 and Vorbis add encoder padding; allow 0.1 s either way.
    assert abs(samples.size / SR - 3.0) < 0.1
    spectrum = np.abs(np.fft.rfft(samples[: 2 * SR]))
    frequencies = np.fft.rfftfreq(2 * SR, 1 / SR)
    top_two = sorted(frequencies[np.argsort(spectrum)[-2:]])
    assert top_two == pytest.approx([220.0, 330.0], abs=1.0)


def test_decode_refuses_bytes_that_are_not_audio():
    with pytest.raises(
        AudioDecodeError, match="audio could not be decoded: not a WAV/FLAC/OGG/MP3"
    ):
        decode_audio(b"this is not audio at all" * 100)


def test_decode_refuses_formats_outside_the_four(stereo_tone_44k):
    with pytest.raises(AudioDecodeError, match=r"not a WAV/FLAC/OGG/MP3 file \(got AIFF\)"):
        decode_audio(encoded(stereo_tone_44k, 44100, "AIFF"))


def test_decode_reports_empty_input():
    with pytest.raises(AudioEmptyError, match="audio is empty"):
        decode_audio(b"")
    with pytest.raises(AudioEmptyError, match="audio is empty"):
        decode_audio(encoded(np.zeros(0, dtype=np.float32), SR, "WAV"))


def test_decode_reports_silence():
    with pytest.raises(AudioSilentError, match="audio is silent"):
        decode_audio(encoded(np.zeros(3 * SR, dtype=np.float32), SR, "FLAC"))


def test_decode_reports_a_one_second_clip_as_too_short():
    with pytest.raises(AudioTooShortError, match=r"audio is 1\.0 s long; at least 2 s needed"):
        decode_audio(encoded(tone(440.0, 1.0), SR, "WAV"))


def test_audio_errors_share_one_base_that_is_a_value_error():
    for error in (AudioDecodeError, AudioEmptyError, AudioSilentError, AudioTooShortError):
        assert issubclass(error, AudioError) and issubclass(error, ValueError)


def test_decode_stops_at_max_duration():
    samples = decode_audio(encoded(tone(440.0, 10.0), SR, "FLAC"), max_duration_s=3.0)
    assert samples.size == 3 * SR


def test_non_finite_samples_never_reach_the_features():
    samples = tone(220.0, 3.0)
    samples[1000:1100] = np.nan
    samples[5000] = np.inf
    features = features_from_bytes(encoded(samples, SR, "WAV", "FLOAT"))
    for value in _all_numbers(features):
        assert math.isfinite(value)


# Features


def test_features_have_the_documented_shape(tone_features):
    assert tone_features.duration_s == pytest.approx(4.0)
    assert len(tone_features.mfcc_mean) == len(tone_features.mfcc_std) == 20
    assert len(tone_features.chroma_mean) == 12
    assert len(tone_features.spectral_contrast_mean) == 7
    assert tone_features.mode in ("major", "minor")
    assert -1.0 <= tone_features.key_confidence <= 1.0


def test_pitch_of_a_220_hz_tone(tone_features):
    assert tone_features.f0_median_hz == pytest.approx(220.0, rel=0.01)
    assert tone_features.f0_std_semitones < 0.1
    assert tone_features.voiced_fraction > 0.9


def test_chroma_of_a_220_hz_tone_peaks_on_a(tone_features):
    assert int(np.argmax(tone_features.chroma_mean)) == 9  # C first: A is index 9


def test_level_of_a_half_scale_sine(tone_features):
    # RMS of a sine is amplitude / sqrt(2): 0.5 -> -9.03 dBFS, steady.
    assert tone_features.rms_db_mean == pytest.approx(-9.03, abs=0.3)
    assert tone_features.dynamic_range_db < 1.0


def test_a_steady_tone_has_no_pulse(tone_features):
    assert tone_features.tempo_bpm == 0.0
    assert tone_features.onset_rate_hz == 0.0


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_tempo_of_a_click_track(bpm):
    features = extract_features(click_track(bpm))
    assert features.tempo_bpm == pytest.approx(bpm, rel=0.03)
    assert features.beat_strength > 0.5
    assert features.onset_rate_hz == pytest.approx(bpm / 60.0, rel=0.1)


def test_key_of_a_c_major_cadence():
    features = extract_features(chord_sequence(C_MAJOR_CADENCE))
    assert (features.key, features.mode) == ("C", "major")
    assert features.key_confidence > 0.6


def test_key_of_an_a_minor_cadence():
    features = extract_features(chord_sequence(A_MINOR_CADENCE))
    assert (features.key, features.mode) == ("A", "minor")
    assert features.key_confidence > 0.6


def test_noise_is_unvoiced_bright_and_without_pulse():
    features = extract_features(noise())
    assert features.voiced_fraction < 0.1
    assert features.spectral_centroid_hz > 3000
    assert features.beat_strength < 0.3


# Blocks


def test_blocks_have_the_group_dimensions_and_unit_norm(tone_features):
    blocks = feature_blocks(tone_features)
    assert list(blocks) == [group.name for group in FEATURE_GROUPS]
    for group in FEATURE_GROUPS:
        block = blocks[group.name]
        assert block.dtype == np.float32 and block.shape == (group.dimensions,)
        assert np.all(np.isfinite(block))
        assert float(np.linalg.norm(block)) == pytest.approx(1.0, abs=1e-5)


def test_identical_audio_is_similar_one_in_every_group():
    samples = chord_sequence(C_MAJOR_CADENCE)
    first = features_from_bytes(encoded(samples, SR, "WAV", "FLOAT"))
    second = features_from_bytes(encoded(samples, SR, "FLAC", "PCM_24"))
    for group in FEATURE_GROUPS:
        assert similarity(first, second, group.name) == pytest.approx(1.0, abs=1e-3)


def test_timbre_follows_the_instrument_not_the_tune_or_the_level():
    mellow_a = extract_features(melody(TUNE_A, MELLOW))
    mellow_a_quiet = extract_features(melody(TUNE_A, MELLOW, amplitude=0.1))
    mellow_b = extract_features(melody(TUNE_B, MELLOW))
    bright_a = extract_features(melody(TUNE_A, BRIGHT))

    assert similarity(mellow_a, mellow_a_quiet, "timbre") > 0.99
    same_instrument = similarity(mellow_a, mellow_b, "timbre")
    same_tune = similarity(mellow_a, bright_a, "timbre")
    assert same_instrument > same_tune + 0.1
    assert similarity(mellow_a, mellow_b, "brightness") > similarity(
        mellow_a, bright_a, "brightness"
    )


def test_related_keys_score_higher_than_distant_keys():
    c_major = extract_features(chord_sequence(C_MAJOR_CADENCE))
    g_major = extract_features(chord_sequence([[n + 7 for n in c] for c in C_MAJOR_CADENCE]))
    f_sharp_major = extract_features(chord_sequence([[n + 6 for n in c] for c in C_MAJOR_CADENCE]))
    assert similarity(c_major, g_major, "key") > similarity(c_major, f_sharp_major, "key")
    assert similarity(c_major, f_sharp_major, "key") < 0


def test_near_tempi_score_higher_than_far_tempi(tone_features):
    at = {bpm: replace(tone_features, tempo_bpm=bpm) for bpm in (60.0, 120.0, 125.0)}
    assert similarity(at[120.0], at[125.0], "rhythm") > 0.98
    assert similarity(at[120.0], at[60.0], "rhythm") < 0.9


def test_degenerate_features_still_give_finite_unit_blocks(tone_features):
    zeros = AudioFeatures(
        duration_s=0.0,
        mfcc_mean=(0.0,) * 20,
        mfcc_std=(0.0,) * 20,
        chroma_mean=(0.0,) * 12,
        tempo_bpm=0.0,
        beat_strength=0.0,
        onset_rate_hz=0.0,
        rms_db_mean=-120.0,
        dynamic_range_db=0.0,
        spectral_centroid_hz=0.0,
        spectral_rolloff_hz=0.0,
        spectral_contrast_mean=(0.0,) * 7,
        f0_median_hz=0.0,
        f0_std_semitones=0.0,
        voiced_fraction=0.0,
        key="C",
        mode="major",
        key_confidence=0.0,
    )
    flat_chroma = replace(tone_features, chroma_mean=(0.5,) * 12)
    huge = replace(tone_features, tempo_bpm=1e30, spectral_centroid_hz=float("inf"))
    for features in (zeros, flat_chroma, huge):
        for block in feature_blocks(features).values():
            assert np.all(np.isfinite(block))
            assert float(np.linalg.norm(block)) == pytest.approx(1.0, abs=1e-5)
    # Two atonal clips agree on harmony and key rather than scoring 0 against each other.
    assert similarity(zeros, flat_chroma, "harmony") == pytest.approx(1.0)
    assert similarity(zeros, flat_chroma, "key") == pytest.approx(1.0)


def test_measure_extraction_speed_reports_every_group():
    speeds = measure_extraction_speed(clip_s=4.0, min_cpu_s_per_stage=0.02)
    expected = {"spectra", "total"} | {group.name for group in FEATURE_GROUPS}
    assert set(speeds) == expected
    assert all(speed > 1.0 for speed in speeds.values())  # faster than real time


def _all_numbers(features: AudioFeatures) -> list[float]:
    numbers: list[float] = []
    for value in features.__dict__.values():
        if isinstance(value, float):
            numbers.append(value)
        elif isinstance(value, tuple):
            numbers.extend(value)
    return numbers
