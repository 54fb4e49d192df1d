"""The synthesiser through Triton (PyTriton dev server): the same audio as ONNX Runtime, and
a server that dies mid-render ends the call with UNAVAILABLE."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import tempfile
import time
from typing import Literal

import grpc
import grpc.aio
import numpy as np
import pytest

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import App, RunningServer, serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.audio_files import (
    AUDIO_DIR,
    AUDIO_MODEL,
    decoded,
    encoded,
    models_folder,
    scale,
    score,
    tone,
)
from tests.generate.triton_server import TRITON_PYTHON, DevServer

pytestmark = [
    pytest.mark.skipif(not TRITON_PYTHON.exists(), reason="no .venv-triton (`make triton-env`)"),
    pytest.mark.skipif(not (AUDIO_DIR / "model.onnx").exists(),
                       reason="no synthesiser folder (`make audio-model`)"),
]
# Four voices, long enough that the killed server is met in the middle of the render.
LONG = score(*((program, scale(pitch, 300, note_s=1.0)) for program, pitch in
               ((40, 67), (41, 60), (42, 48), (73, 72))))


async def _service(models: pathlib.Path, backend: Literal["onnxruntime", "triton"], url: str = ""
                   ) -> tuple[App, RunningServer]:
    # The dev server serves one model, so the synthesiser is the default of both kinds.
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=AUDIO_MODEL, default_audio_model=AUDIO_MODEL,
                                backend=backend, triton_url=url, triton_timeout_s=30,
                                onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None
    await app.warmup()
    return app, await serve_in_process(app, settings=settings)


async def _played(stub: generate_pb2_grpc.GenerateServiceAsyncStub) -> dict[str, np.ndarray]:
    midi = score((40, scale(72, 6)), (42, scale(48, 6)))
    rendered = await stub.RenderScore(pb.RenderScoreRequest(midi=midi, seed=9), timeout=60)
    moved = await stub.TransferTimbre(pb.TransferTimbreRequest(
        audio=encoded(tone(262.0, 2.0)), timbre=pb.Timbre(mix=pb.TimbreMix(
            weights={"clarinet": 1.0, "violin": 1.0})), seed=9), timeout=60)
    return {"render": decoded(rendered.audio)[0], "transfer": decoded(moved.audio)[0]}


async def test_triton_plays_what_onnxruntime_plays_and_dies_cleanly(
        tmp_path: pathlib.Path) -> None:
    models = models_folder(tmp_path, AUDIO_MODEL)
    # PyTriton's socket paths include the workspace and must stay under 108 characters.
    workspace = pathlib.Path(tempfile.mkdtemp(prefix="trt-")) / "w"
    server = DevServer.start(models / AUDIO_MODEL, AUDIO_MODEL, workspace)
    played = {}
    try:
        backends: tuple[Literal["onnxruntime", "triton"], ...] = ("onnxruntime", "triton")
        for backend in backends:
            app, running = await _service(models, backend, server.url)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                    stub = generate_pb2_grpc.GenerateServiceStub(channel)
                    listed = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
                    assert [(m.backend, m.status) for m in listed.models] == [
                        (backend, "ready")]
                    played[backend] = await _played(stub)
                    if backend == "triton":
                        await _kill_mid_render(stub, server)
            finally:
                await running.server.stop(None)
                assert app.close is not None
                await app.close()
    finally:
        server.stop()
    for kind in ("render", "transfer"):
        ours, theirs = played["triton"][kind], played["onnxruntime"][kind]
        assert ours.shape == theirs.shape, kind
        # The same graph on two onnxruntime builds: within a few 16-bit steps.
        np.testing.assert_allclose(ours, theirs, atol=4 / 32768, err_msg=kind)


async def _kill_mid_render(stub: generate_pb2_grpc.GenerateServiceAsyncStub,
                           server: DevServer) -> None:
    call = stub.RenderScore(pb.RenderScoreRequest(midi=LONG, seed=1), timeout=120)
    await asyncio.sleep(1.0)  # the render is under way: parsing done, voices playing
    assert not call.done()
    server.signal_group(signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "triton" in (failure.value.details() or "")
    assert time.monotonic() - started < 15
