"""The audio room's pieces without a server: lines, ranges, envelopes, timbres, chunked calls."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.kit.errors import InvalidArgument
from services.generate.audio.controls import FRAME_RATE_HZ, LOUDNESS_FLOOR_DB
from services.generate.audio.model import MAX_CALL_FRAMES, AudioModel, Envelope
from services.generate.audio.score import (
    ScoreNote,
    fit_range,
    loudness_from_envelope,
    read_score,
    split_lines,
)
from services.generate.audio.timbre import TimbreChoice, default_instrument, resolve
from services.generate.audio.transfer import octave_shift
from services.generate.inference.backend import ModelSpec
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from tests.generate.audio_files import AUDIO_DIR, score

needs_model = pytest.mark.skipif(not (AUDIO_DIR / "model.onnx").exists(),
                                 reason="no synthesiser folder (`make audio-model`)")
ENVELOPE = Envelope(attack_db=np.array([-40.0, -30.0, -20.0], np.float32),
                    release_db=np.array([-5.0, -10.0], np.float32), db_per_velocity=0.5,
                    reference_velocity=100.0)


def _note(pitch: int, start_s: float, end_s: float, velocity: int = 100) -> ScoreNote:
    return ScoreNote(pitch, start_s, end_s, velocity)


def test_a_chord_splits_top_down_into_lines_and_a_legato_overlap_stays_in_its_line() -> None:
    notes = [_note(60, 0, 1), _note(67, 0, 1), _note(64, 0, 1), _note(72, 1.02, 2)]
    lines = split_lines(notes)
    assert [[n.pitch for n in line] for line in lines] == [[67, 72], [64], [60]]
    assert lines[0][0].end_s == 1.0  # only 0.02 s late: not cut, just followed
    overlapping = split_lines([_note(60, 0, 1.03), _note(62, 1.0, 2)])
    assert len(overlapping) == 1 and overlapping[0][0].end_s == 1.0


def test_a_voice_moves_by_octaves_then_single_notes_fold_in() -> None:
    low = tuple(_note(p, i, i + 1) for i, p in enumerate((36, 38, 40, 52)))
    moved = fit_range(low, 55, 96)  # the violin's range; the median (39) is 16 below
    assert [n.pitch for n in moved] == [60, 62, 64, 76]
    inside = tuple(_note(p, i, i + 1) for i, p in enumerate((50, 60, 62, 64)))
    assert [n.pitch for n in fit_range(inside, 55, 96)] == [62, 60, 62, 64]


def test_loudness_follows_attack_velocity_and_release_and_stops_at_the_next_note() -> None:
    frame = 1 / FRAME_RATE_HZ
    line = [_note(60, 0, 5 * frame, velocity=110), _note(62, 6 * frame, 7 * frame)]
    curve = loudness_from_envelope(line, ENVELOPE, 12)
    # +5 dB for 10 velocity steps; the attack's last value holds; released at note-off
    # (frame 5) from the level there, cut where the next note starts (frame 6).
    assert curve[:6].tolist() == [-35.0, -25.0, -15.0, -15.0, -15.0, -20.0]
    assert curve[6:10].tolist() == [-40.0, -45.0, -50.0, LOUDNESS_FLOOR_DB]
    assert (curve[10:] == LOUDNESS_FLOOR_DB).all()


def test_octave_shift_is_zero_inside_the_range_and_nearest_the_middle_outside() -> None:
    assert octave_shift(440.0, 55, 96) == 0.0           # A4 on a violin
    assert octave_shift(110.0, 60, 93) == 24.0          # A2 up to the flute
    assert octave_shift(27.5, 60, 93) == 24.0           # at most two octaves
    assert octave_shift(1760.0, 36, 72) == -24.0        # A6 down to the cello


def test_a_midi_whose_notes_all_have_no_length_has_no_notes() -> None:
    with pytest.raises(InvalidArgument, match="midi: has no notes"):
        read_score(score((0, [(60, 1.0, 1.0)])))


@needs_model
def test_timbres_resolve_to_weighted_means_and_defaults_follow_the_program() -> None:
    model = AudioModel(ModelSpec.load(AUDIO_DIR), OnnxRuntimeBackend(["CPUExecutionProvider"]))
    instruments = model.instruments
    mix = resolve("timbre", TimbreChoice(weights=(("cello", 1.0), ("violin", 3.0))),
                  instruments)
    assert mix.weights == {"violin": 0.75, "cello": 0.25}
    np.testing.assert_allclose(mix.embedding, 0.75 * instruments["violin"].embedding
                               + 0.25 * instruments["cello"].embedding, rtol=1e-6)
    assert (mix.low, mix.high) == (instruments["violin"].low, instruments["violin"].high)
    with pytest.raises(InvalidArgument, match=r"timbre.instrument: unknown instrument 'oboe'"):
        resolve("timbre", TimbreChoice(instrument="oboe"), instruments)
    assert default_instrument(41, 76, instruments).name == "violin"
    assert default_instrument(43, 48, instruments).name == "cello"
    assert default_instrument(53, 40, instruments).name == "choir"
    assert default_instrument(60, 70, instruments).name == "trumpet"
    assert default_instrument(68, 70, instruments).name == "clarinet"
    assert default_instrument(75, 70, instruments).name == "flute"
    assert default_instrument(0, 40, instruments).name == "cello"    # by register


@needs_model
async def test_a_long_voice_in_chunks_matches_one_call() -> None:
    backend = OnnxRuntimeBackend(["CPUExecutionProvider"], intra_op_threads=1)
    spec = ModelSpec.load(AUDIO_DIR)
    await backend.load(spec)
    try:
        model = AudioModel(spec, backend)
        n = MAX_CALL_FRAMES + 1500
        rng = np.random.default_rng(0)
        f0 = np.repeat(rng.uniform(150, 600, n // 50 + 1), 50)[:n].astype(np.float32)
        loudness = np.repeat(rng.uniform(-80, -30, n // 50 + 1), 50)[:n].astype(np.float32)
        timbre = model.instruments["flute"].embedding
        chunked, chunked_noise = await model.frames(f0, loudness, timbre)
        whole = await backend.run(spec.name, {"f0_hz": f0[None], "loudness_db": loudness[None],
                                              "timbre": timbre[None]})
        scale = float(np.abs(whole["amplitudes"]).max())
        assert chunked.shape == whole["amplitudes"][0].shape
        # Exact up to the join; after it, within the GRU's cold-start drift (model.py).
        first = MAX_CALL_FRAMES
        np.testing.assert_allclose(chunked[:first], whole["amplitudes"][0][:first],
                                   atol=1e-5 * scale)
        np.testing.assert_allclose(chunked, whole["amplitudes"][0], atol=0.1 * scale)
        np.testing.assert_allclose(chunked_noise, whole["noise"][0],
                                   atol=0.1 * float(np.abs(whole["noise"]).max()))
    finally:
        await backend.close()
