"""The text model through Triton (PyTriton dev server): same text as ONNX Runtime, and a
server that dies mid-stream ends the call with UNAVAILABLE."""

from __future__ import annotations

import pathlib
import signal
import tempfile
import time

import grpc
import grpc.aio
import pytest

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.test_service import MODELS_DIR
from tests.generate.triton_server import TRITON_PYTHON, DevServer

TEXT_MODEL = "smollm2-135m-instruct"
pytestmark = [
    pytest.mark.skipif(not TRITON_PYTHON.exists(), reason="no .venv-triton (`make triton-env`)"),
    pytest.mark.skipif(not (MODELS_DIR / TEXT_MODEL / "model.json").exists(),
                       reason="the text model is not converted (`make text-llm`)"),
]


def _models(tmp_path: pathlib.Path) -> pathlib.Path:
    # Only the text model: the dev server serves one model.
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / TEXT_MODEL).symlink_to((MODELS_DIR / TEXT_MODEL).resolve())
    return folder


async def _service(models: pathlib.Path, backend: str, url: str = "") -> tuple[object, object]:
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=TEXT_MODEL, default_text_model=TEXT_MODEL,
                                backend=backend, triton_url=url, triton_timeout_s=30,
                                onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None
    await app.warmup()
    return app, await serve_in_process(app, settings=settings)


async def _greedy(address: str) -> str:
    request = pb.GenerateTextRequest(prompt="The three primary colours are", max_tokens=12,
                                     sampling=pb.TextSampling(temperature=0.0))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        async for reply in stub.GenerateText(request, timeout=120):
            if reply.HasField("result"):
                return reply.result.text
    raise AssertionError("no result")


async def test_triton_writes_what_onnxruntime_writes_and_dies_cleanly(
        tmp_path: pathlib.Path) -> None:
    models = _models(tmp_path)
    # PyTriton's socket paths include the workspace and must stay under 108 characters.
    workspace = pathlib.Path(tempfile.mkdtemp(prefix="trt-")) / "w"
    server = DevServer.start(models / TEXT_MODEL, TEXT_MODEL, workspace)
    texts = {}
    try:
        for backend in ("onnxruntime", "triton"):
            app, running = await _service(models, backend, server.url)
            try:
                texts[backend] = await _greedy(f"127.0.0.1:{running.port}")  # type: ignore[attr-defined]
                if backend != "triton":
                    continue
                async with grpc.aio.insecure_channel(
                        f"127.0.0.1:{running.port}") as channel:  # type: ignore[attr-defined]
                    stub = generate_pb2_grpc.GenerateServiceStub(channel)
                    call = stub.GenerateText(pb.GenerateTextRequest(
                        prompt="Once upon a time", max_tokens=512), timeout=120)
                    assert (await call.read()).HasField("delta")
                    server.signal_group(signal.SIGKILL)
                    started = time.monotonic()
                    with pytest.raises(grpc.aio.AioRpcError) as failure:
                        while await call.read() != grpc.aio.EOF:
                            pass
                    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() - started < 10
            finally:
                await running.server.stop(None)  # type: ignore[attr-defined]
                await app.close()  # type: ignore[attr-defined]
    finally:
        server.stop()
    assert texts["triton"] == texts["onnxruntime"] and texts["triton"].strip()
