"""RenderScore, TransferTimbre, NEURAL rendering and ListModels over gRPC: the real server
built by the production factory, the committed synthesiser folder, ONNX Runtime."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import numpy as np
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.audio_files import (
    AUDIO_DIR,
    AUDIO_MODEL,
    cents,
    decoded,
    encoded,
    expected_samples,
    median_pitch_hz,
    model_json,
    models_folder,
    scale,
    score,
    tone,
)
from tests.generate.test_service import MODEL, _generate

pytestmark = [
    pytest.mark.skipif(not (AUDIO_DIR / "model.onnx").exists(),
                       reason="no synthesiser folder (`make audio-model`)"),
    pytest.mark.asyncio(loop_scope="module"),
]
INSTRUMENTS = [i["name"] for i in model_json()["instruments"]] if (
    AUDIO_DIR / "model.json").exists() else []
TWO_VOICES = score((40, scale(72, 4)), (42, scale(48, 4)))   # violin-ish over cello-ish


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub(tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[generate_pb2_grpc.GenerateServiceAsyncStub]:
    models = models_folder(tmp_path_factory.mktemp("audio"), MODEL, AUDIO_MODEL)
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=MODEL, max_concurrent=2, onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield generate_pb2_grpc.GenerateServiceStub(channel)
    await running.server.stop(None)
    await app.close()


async def _render(stub: generate_pb2_grpc.GenerateServiceAsyncStub, **fields: object
                  ) -> pb.RenderScoreResponse:
    return await stub.RenderScore(pb.RenderScoreRequest(**fields), timeout=120)  # type: ignore[arg-type]


async def _transfer(stub: generate_pb2_grpc.GenerateServiceAsyncStub, **fields: object
                    ) -> pb.TransferTimbreResponse:
    return await stub.TransferTimbre(pb.TransferTimbreRequest(**fields), timeout=120)  # type: ignore[arg-type]


async def test_a_score_renders_as_16khz_audio_of_its_length_the_same_for_a_seed(stub) -> None:  # type: ignore[no-untyped-def]
    reply = await _render(stub, midi=TWO_VOICES, seed=7)
    samples, rate = decoded(reply.audio)
    assert rate == reply.sample_rate_hz == 16000
    assert reply.audio_format == pb.AUDIO_FORMAT_WAV and reply.audio[:4] == b"RIFF"
    assert samples.size == expected_samples(TWO_VOICES)
    assert reply.duration_s == pytest.approx(samples.size / 16000)
    assert float(np.max(np.abs(samples))) == pytest.approx(10 ** (-1 / 20), abs=2e-3)
    assert reply.model == AUDIO_MODEL and reply.model_version and reply.seed == 7
    assert (await _render(stub, midi=TWO_VOICES, seed=7)).audio == reply.audio
    assert (await _render(stub, midi=TWO_VOICES, seed=8)).audio != reply.audio
    flac = await _render(stub, midi=TWO_VOICES, seed=7, audio_format=pb.AUDIO_FORMAT_FLAC)
    assert flac.audio[:4] == b"fLaC" and decoded(flac.audio)[0].size == samples.size


async def test_an_unset_seed_is_chosen_and_reported(stub) -> None:  # type: ignore[no-untyped-def]
    reply = await _render(stub, midi=TWO_VOICES)
    assert (await _render(stub, midi=TWO_VOICES, seed=reply.seed)).audio == reply.audio


async def test_voices_default_to_the_instrument_of_their_program_family(stub) -> None:  # type: ignore[no-untyped-def]
    midi = score((0, scale(84, 2)), (73, scale(70, 2)), (56, scale(64, 2)), (42, scale(40, 2)))
    reply = await _render(stub, midi=midi, seed=1)
    chosen = [dict(v.weights) for v in sorted(reply.voices, key=lambda v: v.voice)]
    # Highest voice first: a piano up high plays the instrument of its register (flute,
    # centred at 76.5; violin 75.5 is farther from 86), then the flute, the trumpet, and
    # strings this low are a cello.
    assert chosen == [{"flute": 1.0}, {"flute": 1.0}, {"trumpet": 1.0}, {"cello": 1.0}]
    assert [v.notes for v in reply.voices] == [2, 2, 2, 2]


async def test_mix_weights_are_reported_scaled_to_sum_to_one(stub) -> None:  # type: ignore[no-untyped-def]
    mix = pb.Timbre(mix=pb.TimbreMix(weights={"violin": 3.0, "flute": 1.0, "cello": 0.0}))
    reply = await _render(stub, midi=TWO_VOICES, seed=2, timbre=mix,
                          voice_timbres=[pb.Timbre(instrument="clarinet")])
    by_voice = {v.voice: dict(v.weights) for v in reply.voices}
    assert by_voice[0] == {"clarinet": 1.0}
    assert by_voice[1] == pytest.approx({"violin": 0.75, "flute": 0.25})


async def test_the_instrument_changes_the_audio(stub) -> None:  # type: ignore[no-untyped-def]
    played = {}
    for name in ("violin", "trumpet"):
        reply = await _render(stub, midi=TWO_VOICES, seed=3, timbre=pb.Timbre(instrument=name))
        played[name] = decoded(reply.audio)[0]
    assert played["violin"].shape == played["trumpet"].shape
    assert float(np.abs(played["violin"] - played["trumpet"]).max()) > 0.05


async def test_chords_are_split_into_lines_and_drums_left_out(stub) -> None:  # type: ignore[no-untyped-def]
    chord = [(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 0.0, 1.0), (72, 1.0, 2.0)]
    midi = score((0, chord), drums=[(36, 0.0, 0.5)])
    reply = await _render(stub, midi=midi, seed=4)
    assert [v.notes for v in reply.voices] == [4]
    assert decoded(reply.audio)[0].size == expected_samples(midi)


async def test_list_models_shows_the_synthesiser_and_its_instruments(stub) -> None:  # type: ignore[no-untyped-def]
    reply = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
    models = {m.card.name: m for m in reply.models}
    audio = models[AUDIO_MODEL]
    assert audio.modality == pb.MODALITY_AUDIO and audio.status == "ready"
    assert list(audio.instruments) == INSTRUMENTS and "violin" in INSTRUMENTS
    assert audio.backend == "onnxruntime"
    assert audio.card.parameters > 0 and audio.card.description
    # The card's history and settings are lists and tables: only numbers are metrics.
    assert set(audio.card.metrics) == {k for k, v in model_json()["card"]["metrics"].items()
                                       if isinstance(v, int | float)}
    assert reply.default_audio_model == AUDIO_MODEL
    assert list(models[MODEL].instruments) == []


async def test_generate_with_the_neural_renderer_returns_its_audio(stub) -> None:  # type: ignore[no-untyped-def]
    common = {"bars": 1, "tempo_bpm": 120, "seed": 5, "audio_format": pb.AUDIO_FORMAT_WAV}
    _, neural = await _generate(stub, renderer=pb.RENDERER_NEURAL,
                                timbre=pb.Timbre(instrument="flute"), **common)
    _, sampler = await _generate(stub, **common)
    assert neural.midi == sampler.midi  # the same music, played by someone else
    samples, rate = decoded(neural.audio)
    assert rate == 16000 and samples.size > 16000
    assert decoded(sampler.audio)[1] == 22050  # FluidSynth stays the default
    again = await _generate(stub, renderer=pb.RENDERER_NEURAL,
                            timbre=pb.Timbre(instrument="flute"), **common)
    assert again[1].audio == neural.audio


async def test_a_recording_is_read_at_its_pitch_and_moved_by_the_shift(stub) -> None:  # type: ignore[no-untyped-def]
    recording = encoded(tone(220.0, 2.0, rate_hz=22050), rate_hz=22050)
    reply = await _transfer(stub, audio=recording, timbre=pb.Timbre(instrument="violin"),
                            seed=1)
    assert reply.voiced_fraction > 0.9
    assert abs(cents(reply.median_f0_hz, 220.0)) < 15
    assert reply.shift_semitones == 0.0  # A3 (57) is inside the violin's range
    assert dict(reply.weights) == {"violin": 1.0}
    samples, rate = decoded(reply.audio)
    assert rate == 16000 and reply.duration_s == pytest.approx(samples.size / 16000)
    assert samples.size == (2.0 * 16000) // 128 * 128 + np.load(AUDIO_DIR / "reverb.npy").size - 1
    up = await _transfer(stub, audio=recording, timbre=pb.Timbre(instrument="violin"),
                         shift_semitones=12, seed=1, output_format=pb.AUDIO_FORMAT_FLAC)
    assert up.shift_semitones == 12.0 and up.audio[:4] == b"fLaC"


async def test_flac_and_ogg_recordings_are_read_too(stub) -> None:  # type: ignore[no-untyped-def]
    for fmt, subtype, name in (("FLAC", None, "flac"), ("OGG", "VORBIS", "ogg")):
        recording = encoded(tone(330.0, 1.5), fmt=fmt, subtype=subtype)
        reply = await _transfer(stub, audio=recording, audio_format=name,
                                timbre=pb.Timbre(instrument="flute"), seed=1)
        assert abs(cents(reply.median_f0_hz, 330.0)) < 15, fmt


async def test_an_absent_shift_moves_the_recording_by_octaves_into_the_range(stub) -> None:  # type: ignore[no-untyped-def]
    high = encoded(tone(880.0, 1.5))   # A5 = 81, above the cello's 36-72
    reply = await _transfer(stub, audio=high, timbre=pb.Timbre(instrument="cello"), seed=2)
    assert reply.shift_semitones == -24.0  # nearest the middle (54) of the range
    low = encoded(tone(110.0, 1.5))    # A2 = 45, below the flute's 60-93
    mix = pb.Timbre(mix=pb.TimbreMix(weights={"flute": 2.0, "cello": 1.0}))
    reply = await _transfer(stub, audio=low, timbre=mix, seed=2)
    assert reply.shift_semitones == 24.0  # the heaviest instrument's range: the flute's
    assert dict(reply.weights) == pytest.approx({"flute": 2 / 3, "cello": 1 / 3})


async def test_a_transferred_glide_comes_back_at_the_shifted_pitch(stub) -> None:  # type: ignore[no-untyped-def]
    glide = np.geomspace(294.0, 392.0, 2 * 16000)   # D4 up to G4 over 2 s, then held
    recording = encoded(np.concatenate([tone(glide, 2.0), tone(392.0, 1.0)]))
    for shift in (0.0, 7.0, -12.0):
        reply = await _transfer(stub, audio=recording, timbre=pb.Timbre(instrument="violin"),
                                shift_semitones=shift, seed=3)
        samples, _ = decoded(reply.audio)
        # The last second, held at G4: the played pitch is the shifted one.
        held = samples[int(2.2 * 16000):int(2.9 * 16000)]
        expected = 392.0 * 2 ** (shift / 12)
        assert abs(cents(median_pitch_hz(held), expected)) < 50, shift


async def test_a_cancelled_render_stops_and_frees_its_slot(stub) -> None:  # type: ignore[no-untyped-def]
    # Two slots held by long renders (600 s of four voices), cancelled: the in-flight
    # gauge falls to zero and a new call gets a slot at once.
    long = score(*((program, scale(pitch, 600, note_s=0.999)) for program, pitch in
                   ((40, 50), (41, 45), (42, 40), (73, 55))))
    before = _cancelled()
    calls = [stub.RenderScore(pb.RenderScoreRequest(midi=long, seed=i), timeout=120)
             for i in range(2)]
    await _until(lambda: _in_flight() == 2)
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await _render(stub, midi=TWO_VOICES)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()
    await _until(lambda: _in_flight() == 0)
    assert _cancelled() == before + 2
    started = asyncio.get_running_loop().time()
    assert (await _render(stub, midi=TWO_VOICES, seed=1)).audio
    # The cancelled renders' last pieces of work may still finish; no more than that.
    assert asyncio.get_running_loop().time() - started < 20


def _in_flight() -> float:
    return REGISTRY.get_sample_value("cadenza_generate_in_flight", {"model": AUDIO_MODEL}) or 0.0


def _cancelled() -> float:
    return REGISTRY.get_sample_value(
        "cadenza_generate_generations_total",
        {"model": AUDIO_MODEL, "mode": "render", "outcome": "cancelled"}) or 0.0


async def _until(condition: object, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_without_the_synthesiser_folder_audio_calls_name_the_make_target(
        tmp_path: pathlib.Path) -> None:
    models = models_folder(tmp_path, MODEL)
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=MODEL, onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = generate_pb2_grpc.GenerateServiceStub(channel)
            for call in (
                    stub.RenderScore(pb.RenderScoreRequest(midi=TWO_VOICES), timeout=10),
                    stub.TransferTimbre(pb.TransferTimbreRequest(
                        audio=encoded(tone(220.0, 1.0)),
                        timbre=pb.Timbre(instrument="violin")), timeout=10)):
                with pytest.raises(grpc.aio.AioRpcError) as failure:
                    await call
                assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "make audio-model" in (failure.value.details() or "")
    finally:
        await running.server.stop(None)
        await app.close()
