"""Generate and ListModels over gRPC: the real server, the committed model, ONNX Runtime."""

from __future__ import annotations

import asyncio
import io
import math
import os
import pathlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pretty_midi
import pytest
import pytest_asyncio
import soundfile

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.music.tokens import Note
from services.generate.settings import GenerateSettings
from tests.generate.midi_files import chorale_primer, melody_midi

MODELS_DIR = pathlib.Path(
    os.environ.get("CADENZA_TEST_GENERATE_MODELS",
                   pathlib.Path(__file__).resolve().parents[2] / "models" / "generate"))
MODEL = "cadenza-poly"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub() -> AsyncIterator[generate_pb2_grpc.GenerateServiceStub]:
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(MODELS_DIR),
                                default_model=MODEL, max_concurrent=2, onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield generate_pb2_grpc.GenerateServiceStub(channel)
    await running.server.stop(None)
    await app.close()


async def _generate(stub: generate_pb2_grpc.GenerateServiceStub,
                    **fields: object) -> tuple[list[pb.NoteEvent], pb.GenerationResult]:
    events: list[pb.NoteEvent] = []
    result = None
    async for response in stub.Generate(pb.GenerateRequest(**fields), timeout=120):
        assert result is None, "nothing may follow the result"
        if response.HasField("event"):
            events.append(response.event)
        else:
            result = response.result
    assert result is not None
    return events, result


def _midi(result: pb.GenerationResult) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(io.BytesIO(result.midi))


async def test_from_scratch_streams_events_then_a_playable_piece(stub) -> None:  # type: ignore[no-untyped-def]
    events, result = await _generate(stub, bars=4, tempo_bpm=120, seed=11)
    assert events, "no note events streamed before the result"
    assert result.model == MODEL and result.model_version and result.seed == 11
    assert result.tokens_generated > 0
    midi = _midi(result)
    notes = [n for inst in midi.instruments for n in inst.notes]
    assert len(notes) == len(events)
    # 4 bars of 4/4 at 120 bpm is 8 s; the last notes may be cut at the bar line.
    assert 6.0 < result.duration_s <= 8.0 + 1e-6
    assert max(e.start_beats + e.duration_beats for e in events) <= 16.0 + 1e-9
    assert result.originality.longest_copied_run_notes >= 1


async def test_same_seed_same_music_other_seed_other_music(stub) -> None:  # type: ignore[no-untyped-def]
    _, first = await _generate(stub, bars=2, seed=5)
    _, again = await _generate(stub, bars=2, seed=5)
    _, other = await _generate(stub, bars=2, seed=6)
    assert first.midi == again.midi
    assert first.midi != other.midi


async def test_an_unset_seed_is_chosen_and_reported(stub) -> None:  # type: ignore[no-untyped-def]
    _, result = await _generate(stub, bars=1)
    _, replay = await _generate(stub, bars=1, seed=result.seed)
    assert result.midi == replay.midi


async def test_controls_reach_the_midi(stub) -> None:  # type: ignore[no-untyped-def]
    _, result = await _generate(stub, bars=3, tempo_bpm=90, time_signature="3/4",
                                key="D minor", programs=[40, 41, 42, 32], seed=3)
    midi = _midi(result)
    assert [(ts.numerator, ts.denominator) for ts in midi.time_signature_changes] == [(3, 4)]
    assert midi.get_tempo_changes()[1][0] == pytest.approx(90, rel=1e-3)
    assert midi.key_signature_changes[0].key_number == pretty_midi.key_name_to_key_number(
        "D minor")
    assert {inst.program for inst in midi.instruments} <= {40, 41, 42, 32}
    assert result.duration_s == pytest.approx(3 * 3 * 60 / 90, abs=1e-6) or \
        result.duration_s < 3 * 3 * 60 / 90


async def test_continue_keeps_the_primer_and_writes_after_it(stub) -> None:  # type: ignore[no-untyped-def]
    primer, primer_notes = chorale_primer()
    events, result = await _generate(stub, mode=pb.GENERATION_MODE_CONTINUE, primer_midi=primer,
                                     bars=2, seed=8)
    notes = {(round(n.start * 2) / 2, n.pitch)
             for inst in _midi(result).instruments for n in inst.notes}
    primer_set = {(n.start / 4 * 0.5, n.pitch) for n in primer_notes}  # 120 bpm: 0.5 s a beat
    assert primer_set <= notes, "the primer is not at the start of the result"
    assert any(e.start_beats >= 8 for e in events), "nothing was written after the primer"


async def test_harmonize_keeps_the_melody_on_top_and_adds_voices(stub) -> None:  # type: ignore[no-untyped-def]
    melody, melody_notes = melody_midi()
    events, result = await _generate(stub, mode=pb.GENERATION_MODE_HARMONIZE,
                                     primer_midi=melody, seed=4)
    by_start: dict[float, list[pb.NoteEvent]] = {}
    for event in events:
        by_start.setdefault(event.start_beats, []).append(event)
    for note in melody_notes:
        starting = by_start.get(note.start / 4, [])
        assert any(e.pitch == note.pitch and e.voice == 0 for e in starting), note
        assert all(e.pitch <= note.pitch for e in starting)
    assert len(events) > len(melody_notes), "no voices were added"
    assert result.duration_s == pytest.approx(
        max(n.end for n in melody_notes) / 4 * 60 / 100, abs=1e-6)


@pytest.mark.parametrize(("audio_format", "extension"), [(pb.AUDIO_FORMAT_WAV, "WAV"),
                                                         (pb.AUDIO_FORMAT_FLAC, "FLAC")])
async def test_audio_is_rendered(stub, audio_format: int, extension: str) -> None:  # type: ignore[no-untyped-def]
    _, result = await _generate(stub, bars=2, seed=2, audio_format=audio_format)
    samples, rate = soundfile.read(io.BytesIO(result.audio))
    assert soundfile.info(io.BytesIO(result.audio)).format == extension
    assert len(samples) / rate >= result.duration_s * 0.9
    assert abs(samples).max() > 0.01


async def test_list_models_shows_the_card_and_readiness(stub) -> None:  # type: ignore[no-untyped-def]
    response = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
    assert response.default_model == MODEL
    (info,) = [m for m in response.models if m.card.name == MODEL]
    assert info.status == "ready" and info.backend == "onnxruntime"
    assert info.card.version and info.card.parameters > 0


def _note_list(notes: list[Note]) -> list[tuple[int, int, int]]:
    return [(n.pitch, n.start, n.end) for n in notes]


BAD_REQUESTS = [
    ("unknown model", {"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "no-such-model"),
    ("corrupt primer", {"mode": pb.GENERATION_MODE_CONTINUE, "primer_midi": b"MThd garbage"},
     grpc.StatusCode.INVALID_ARGUMENT, "primer_midi"),
    ("empty primer", {"mode": pb.GENERATION_MODE_CONTINUE, "primer_midi": b""},
     grpc.StatusCode.INVALID_ARGUMENT, "primer_midi"),
    ("harmonize without melody", {"mode": pb.GENERATION_MODE_HARMONIZE},
     grpc.StatusCode.INVALID_ARGUMENT, "primer_midi"),
    ("unknown program", {"programs": [0, 128]}, grpc.StatusCode.INVALID_ARGUMENT, "programs[1]"),
    ("zero temperature", {"sampling": pb.Sampling(temperature=0.0)},
     grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
    ("negative temperature", {"sampling": pb.Sampling(temperature=-1.0)},
     grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
    ("top_p above one", {"sampling": pb.Sampling(top_p=1.5)},
     grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
    ("top_p zero", {"sampling": pb.Sampling(top_p=0.0)},
     grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
    ("absurd bars", {"bars": 100000}, grpc.StatusCode.INVALID_ARGUMENT, "bars"),
    ("absurd seconds", {"seconds": 1e9}, grpc.StatusCode.INVALID_ARGUMENT, "seconds"),
    ("zero bars", {"bars": 0}, grpc.StatusCode.INVALID_ARGUMENT, "bars"),
    ("bad tempo", {"tempo_bpm": 5000}, grpc.StatusCode.INVALID_ARGUMENT, "tempo_bpm"),
    ("bad key", {"key": "H minor"}, grpc.StatusCode.INVALID_ARGUMENT, "key"),
    ("bad time signature", {"time_signature": "7/5"},
     grpc.StatusCode.INVALID_ARGUMENT, "time_signature"),
    # What an outside probe found (issue 13): each once ran, or did something unasked.
    ("unknown mode", {"mode": 99}, grpc.StatusCode.INVALID_ARGUMENT, "mode: unknown value 99"),
    ("unknown audio format", {"audio_format": 9}, grpc.StatusCode.INVALID_ARGUMENT,
     "audio_format: unknown value 9"),
    ("a bar of 99 whole notes", {"bars": 2, "time_signature": "99/1"},
     grpc.StatusCode.INVALID_ARGUMENT, "time_signature: a bar of 99/1 is 396 quarter notes"),
    ("a huge bar, 128 times", {"bars": 128, "time_signature": "9999/1"},
     grpc.StatusCode.INVALID_ARGUMENT, "time_signature"),
    ("non-ASCII digits", {"time_signature": "\u0664/\u0664"},
     grpc.StatusCode.INVALID_ARGUMENT, "time_signature"),
    ("128 bars of 16/4", {"bars": 128, "time_signature": "16/4"},
     grpc.StatusCode.INVALID_ARGUMENT, "2048 quarter notes"),
    ("ten minutes at 300 bpm", {"seconds": 600, "tempo_bpm": 300},
     grpc.StatusCode.INVALID_ARGUMENT, "3000 quarter notes"),
    ("128 bars at 20 bpm", {"bars": 128, "tempo_bpm": 20},
     grpc.StatusCode.INVALID_ARGUMENT, "(1536 s) of music"),
    ("infinite temperature", {"sampling": pb.Sampling(temperature=math.inf)},
     grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature: must be in (0, 10]"),
    ("NaN temperature", {"sampling": pb.Sampling(temperature=math.nan)},
     grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature"),
    ("200 programs", {"programs": [0] * 200}, grpc.StatusCode.INVALID_ARGUMENT,
     "programs: at most 16"),
    ("long key", {"key": "C" * 100_000}, grpc.StatusCode.INVALID_ARGUMENT, "'... is not a key"),
]


@pytest.mark.parametrize(("case", "fields", "code", "names"), BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
async def test_bad_input_gets_a_clear_status(stub, case: str, fields: dict, code: grpc.StatusCode,  # type: ignore[no-untyped-def]
                                             names: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _generate(stub, **fields)
    assert failure.value.code() == code, failure.value.details()
    assert names in (failure.value.details() or "")


async def test_a_primer_longer_than_the_context_is_refused(stub) -> None:  # type: ignore[no-untyped-def]
    primer, _ = chorale_primer(bars=64)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _generate(stub, mode=pb.GENERATION_MODE_CONTINUE, primer_midi=primer, bars=1)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "primer_midi" in (failure.value.details() or "")
    assert "shorten the primer" in (failure.value.details() or "")


async def test_a_cancelled_stream_stops_and_frees_its_slot(stub) -> None:  # type: ignore[no-untyped-def]
    # Two slots: hold both with long generations, cancel them, then a third call must get
    # a slot at once (it would get RESOURCE_EXHAUSTED if a cancelled one kept running).
    calls = [stub.Generate(pb.GenerateRequest(bars=128, seed=i), timeout=120) for i in range(2)]
    for call in calls:
        await call.read()  # the generation is running
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await _generate(stub, bars=1)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()
    await asyncio.sleep(0.5)
    _, result = await _generate(stub, bars=1, seed=1)
    assert result.midi
