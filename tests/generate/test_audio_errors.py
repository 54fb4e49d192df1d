"""Bad input to RenderScore, TransferTimbre and NEURAL Generate: each refused with its code
and a message that names the field and the fix (the real server, ONNX Runtime)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import numpy as np
import pytest
import pytest_asyncio

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.audio_files import (
    AUDIO_DIR,
    AUDIO_MODEL,
    encoded,
    models_folder,
    scale,
    score,
    tone,
)
from tests.generate.test_service import MODEL

pytestmark = [
    pytest.mark.skipif(not (AUDIO_DIR / "model.onnx").exists(),
                       reason="no synthesiser folder (`make audio-model`)"),
    pytest.mark.asyncio(loop_scope="module"),
]
IA = grpc.StatusCode.INVALID_ARGUMENT
RE = grpc.StatusCode.RESOURCE_EXHAUSTED
VIOLIN = pb.Timbre(instrument="violin")
KNOWN = "use one of cello, choir, clarinet, flute, trumpet, violin"
SONG = score((40, scale(67, 3)))
SINE = encoded(tone(330.0, 1.0))


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


async def _refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value.code(), failure.value.details() or ""


def _noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)


def _aiff() -> bytes:
    return encoded(tone(330.0, 1.0), fmt="AIFF", subtype="PCM_16")


TRANSFERS = [
    ("corrupt audio", {"audio": b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64)}, IA,
     "audio: audio could not be decoded"),
    ("empty audio", {"audio": b""}, IA, "audio: is empty"),
    ("unsupported audio", {"audio": _aiff()}, IA,
     "audio: audio could not be decoded: not a WAV/FLAC/OGG/MP3 file (got AIFF)"),
    ("silence", {"audio": encoded(np.zeros(16000, np.float32))}, IA,
     "audio: no pitch was found: the recording is silent"),
    ("white noise", {"audio": encoded(_noise(3.0))}, IA, "audio: no pitch was found"),
    ("over the length", {"audio": encoded(tone(220.0, 61.0, level=0.1))}, RE,
     "audio: the recording is 61.0 s long; the limit is 60 s"),
    ("over the size", {"audio": b"RIFF" + bytes(16 * 2**20)}, RE,
     "audio: is 16.0 MiB; the limit is 16 MiB"),
    ("a format the bytes are not", {"audio": SINE, "audio_format": "flac"}, IA,
     "audio_format: says flac, but the audio is wav"),
    ("an unknown format", {"audio": SINE, "audio_format": "aiff"}, IA,
     "audio_format: 'aiff' is not served; use one of wav, flac, ogg, mp3"),
    ("no timbre", {"audio": SINE, "timbre": None}, IA, "timbre: is required"),
    ("an empty timbre", {"audio": SINE, "timbre": pb.Timbre()}, IA,
     "timbre: give an instrument or a mix"),
    ("an unknown instrument", {"audio": SINE, "timbre": pb.Timbre(instrument="banjo")}, IA,
     f"timbre.instrument: unknown instrument 'banjo'; {KNOWN}"),
    ("a negative weight", {"audio": SINE, "timbre": pb.Timbre(mix=pb.TimbreMix(
        weights={"violin": 1.0, "cello": -0.5}))}, IA,
     "timbre.mix.weights[cello]: must be a finite number >= 0, got -0.5"),
    ("a NaN weight", {"audio": SINE, "timbre": pb.Timbre(mix=pb.TimbreMix(
        weights={"violin": math.nan}))}, IA,
     "timbre.mix.weights[violin]: must be a finite number >= 0, got nan"),
    ("all weights zero", {"audio": SINE, "timbre": pb.Timbre(mix=pb.TimbreMix(
        weights={"violin": 0.0, "flute": 0.0}))}, IA,
     "timbre.mix.weights: all weights are zero"),
    ("an unknown weight name", {"audio": SINE, "timbre": pb.Timbre(mix=pb.TimbreMix(
        weights={"violin": 1.0, "banjo": 1.0}))}, IA,
     f"timbre.mix.weights[banjo]: unknown name; {KNOWN}"),
    ("a shift above 24", {"audio": SINE, "shift_semitones": 24.5}, IA,
     "shift_semitones: must be between -24 and 24, got 24.5"),
    ("a shift below -24", {"audio": SINE, "shift_semitones": -25}, IA,
     "shift_semitones: must be between -24 and 24, got -25"),
    ("an unknown output format", {"audio": SINE, "output_format": 7}, IA,
     "output_format: unknown value 7"),
    ("a music model", {"audio": SINE, "model": MODEL}, IA,
     "model: 'cadenza-poly' is a music model; this call needs an audio model"),
    ("an unknown model", {"audio": SINE, "model": "nope"}, grpc.StatusCode.NOT_FOUND,
     "model 'nope' does not exist"),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), TRANSFERS,
                         ids=[t[0] for t in TRANSFERS])
async def test_transfer_refuses(stub, case: str, fields: dict[str, object],  # type: ignore[no-untyped-def]
                                code: grpc.StatusCode, message: str) -> None:
    request = pb.TransferTimbreRequest(timbre=VIOLIN)
    for name, value in fields.items():
        if value is None:
            request.ClearField(name)  # type: ignore[arg-type]
        elif isinstance(value, pb.Timbre):
            getattr(request, name).SetInParent()  # set, even when empty
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    got_code, details = await _refused(stub.TransferTimbre(request, timeout=60))
    assert (got_code, details[:len(message)]) == (code, message), details


def _drums_only() -> bytes:
    return score(drums=[(36, 0.0, 0.5), (38, 0.5, 1.0)])


RENDERS = [
    ("a MIDI with no notes", {"midi": score()}, "midi: has no notes"),
    ("a MIDI of drums only", {"midi": _drums_only()}, "midi: has no notes"),
    ("not a MIDI", {"midi": b"MThd this is not a midi file"},
     "midi: is not a readable Standard MIDI File"),
    ("an empty midi", {"midi": b""}, "midi: is empty"),
    ("over 600 s", {"midi": score((0, [(60, 599.0, 601.0)]))},
     "midi: the score is 601.0 s long; at most 600 s"),
    ("over 16 voices", {"midi": score(*((p, scale(60, 1)) for p in range(17)))},
     "midi: has 17 voices; at most 16"),
    ("over 32 lines", {"midi": score((0, [(40 + i, 0.0, 1.0) for i in range(33)]))},
     "midi: needs more than 32 monophonic lines"),
    ("an unknown instrument", {"timbre": pb.Timbre(instrument="banjo")},
     f"timbre.instrument: unknown instrument 'banjo'; {KNOWN}"),
    ("a bad voice timbre", {"voice_timbres": [VIOLIN, pb.Timbre(mix=pb.TimbreMix(
        weights={"flute": -1.0}))]},
     "voice_timbres[1].mix.weights[flute]: must be a finite number >= 0, got -1.0"),
    ("17 voice timbres", {"voice_timbres": [VIOLIN] * 17}, "voice_timbres: has 17 timbres"),
    ("an unknown audio format", {"audio_format": 5}, "audio_format: unknown value 5"),
]


@pytest.mark.parametrize(("case", "fields", "message"), RENDERS, ids=[r[0] for r in RENDERS])
async def test_render_refuses(stub, case: str, fields: dict[str, object], message: str  # type: ignore[no-untyped-def]
                              ) -> None:
    request = pb.RenderScoreRequest(**{"midi": SONG, **fields})  # type: ignore[arg-type]
    code, details = await _refused(stub.RenderScore(request, timeout=60))
    assert (code, details[:len(message)]) == (IA, message), details


GENERATES = [
    ("a timbre without the neural renderer", {"timbre": VIOLIN},
     "timbre: only with renderer RENDERER_NEURAL"),
    ("an audio model without the neural renderer", {"audio_model": AUDIO_MODEL},
     "audio_model: only with renderer RENDERER_NEURAL"),
    ("an unknown renderer", {"renderer": 9}, "renderer: unknown value 9"),
    ("an unknown instrument", {"renderer": pb.RENDERER_NEURAL,
                               "timbre": pb.Timbre(instrument="banjo")},
     f"timbre.instrument: unknown instrument 'banjo'; {KNOWN}"),
    ("all-zero voice weights", {"renderer": pb.RENDERER_NEURAL, "voice_timbres": [
        pb.Timbre(mix=pb.TimbreMix(weights={"violin": 0.0}))]},
     "voice_timbres[0].mix.weights: all weights are zero"),
]


@pytest.mark.parametrize(("case", "fields", "message"), GENERATES,
                         ids=[g[0] for g in GENERATES])
async def test_neural_generate_refuses_before_writing(stub, case: str,  # type: ignore[no-untyped-def]
                                                      fields: dict[str, object],
                                                      message: str) -> None:
    request = pb.GenerateRequest(bars=1, audio_format=pb.AUDIO_FORMAT_WAV, **fields)  # type: ignore[arg-type]
    code, details = await _refused(_first(stub.Generate(request, timeout=60)))
    assert (code, details[:len(message)]) == (IA, message), details


async def _first(call: grpc.aio.UnaryStreamCall[pb.GenerateRequest, pb.GenerateResponse]
                 ) -> object:
    return await call.read()
