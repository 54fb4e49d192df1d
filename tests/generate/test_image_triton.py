"""The image model through Triton (PyTriton dev server): the same images as ONNX Runtime,
and a server that dies mid-sampling ends the call with UNAVAILABLE."""

from __future__ import annotations

import asyncio
import io
import pathlib
import signal
import tempfile
import time
from typing import Literal

import grpc
import grpc.aio
import numpy as np
import pytest
from PIL import Image

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import App, RunningServer, serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.audio_files import models_folder
from tests.generate.test_image_service import IMAGE_MODEL, TEXT_DIR
from tests.generate.test_service import MODELS_DIR
from tests.generate.triton_server import TRITON_PYTHON, DevServer

pytestmark = [
    pytest.mark.skipif(not TRITON_PYTHON.exists(), reason="no .venv-triton (`make triton-env`)"),
    pytest.mark.skipif(not (MODELS_DIR / IMAGE_MODEL / "model.onnx").exists(),
                       reason="no image model folder (`make image-model`)"),
    pytest.mark.skipif(not (TEXT_DIR / "model_card.json").exists(),
                       reason="no text encoder (`make text-model`)"),
]
SAMPLES = pb.GenerateImageRequest(prompt="a yellow star", count=3, seed=7, size=32,
                                  sampling=pb.ImageSampling(steps=6, guidance=2.0))


async def _service(models: pathlib.Path, backend: Literal["onnxruntime", "triton"], url: str = ""
                   ) -> tuple[App, RunningServer]:
    # The dev server serves one model, so the image model is the default of both kinds.
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=IMAGE_MODEL, default_image_model=IMAGE_MODEL,
                                backend=backend, triton_url=url, triton_timeout_s=30,
                                onnx_intra_op_threads=1, text_model_dir=str(TEXT_DIR))
    app = await build_generate(settings)
    assert app.warmup is not None
    await app.warmup()
    return app, await serve_in_process(app, settings=settings)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), np.float32)


async def test_triton_draws_what_onnxruntime_draws_and_dies_cleanly(
        tmp_path: pathlib.Path) -> None:
    models = models_folder(tmp_path, IMAGE_MODEL)
    # PyTriton's socket paths include the workspace and must stay under 108 characters.
    workspace = pathlib.Path(tempfile.mkdtemp(prefix="trt-")) / "w"
    server = DevServer.start(models / IMAGE_MODEL, IMAGE_MODEL, workspace)
    drawn: dict[str, list[np.ndarray]] = {}
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
                    reply = await stub.GenerateImage(SAMPLES, timeout=60)
                    drawn[backend] = [_pixels(x) for x in reply.images]
                    if backend == "triton":
                        await _kill_mid_sampling(stub, server)
            finally:
                await running.server.stop(None)
                assert app.close is not None
                await app.close()
    finally:
        server.stop()
    for ours, theirs in zip(drawn["triton"], drawn["onnxruntime"], strict=True):
        # The same graph on two onnxruntime builds: a level or two of 255 at most.
        assert np.abs(ours - theirs).max() <= 3


async def _kill_mid_sampling(stub: generate_pb2_grpc.GenerateServiceAsyncStub,
                             server: DevServer) -> None:
    call = stub.GenerateImage(pb.GenerateImageRequest(
        prompt="a long wait", count=8, seed=1, sampling=pb.ImageSampling(steps=250)),
        timeout=120)
    await asyncio.sleep(1.0)  # the sampling is under way
    assert not call.done()
    server.signal_group(signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "triton" in (failure.value.details() or "")
    assert time.monotonic() - started < 15
