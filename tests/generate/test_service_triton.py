"""The generate service with the Triton backend, against a real Triton server (PyTriton)."""

from __future__ import annotations

import pathlib
import signal
import time
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.test_service import MODEL, MODELS_DIR, _generate
from tests.generate.triton_server import TRITON_PYTHON, DevServer

pytestmark = [
    pytest.mark.skipif(not TRITON_PYTHON.exists(),
                       reason="no .venv-triton: run `make triton-env` (make test does)"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def _service(backend: str, url: str = "") -> tuple[object, object, str]:
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(MODELS_DIR),
                                default_model=MODEL, backend=backend, triton_url=url,
                                triton_timeout_s=30, onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    return app, running, f"127.0.0.1:{running.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def triton(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    server = DevServer.start(MODELS_DIR / MODEL, MODEL,
                             tmp_path_factory.mktemp("triton") / "workspace")
    yield server
    server.stop()


async def test_triton_and_onnxruntime_write_the_same_music(triton: DevServer) -> None:
    results = {}
    for backend in ("triton", "onnxruntime"):
        app, running, address = await _service(backend, triton.url)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = generate_pb2_grpc.GenerateServiceStub(channel)
                models = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
                assert {m.backend for m in models.models} == {backend}
                _, results[backend] = await _generate(stub, bars=2, seed=21)
        finally:
            await running.server.stop(None)  # type: ignore[attr-defined]
            await app.close()  # type: ignore[attr-defined]
    assert results["triton"].midi == results["onnxruntime"].midi


async def test_a_backend_that_dies_mid_stream_gives_unavailable_not_a_hang(
        tmp_path: pathlib.Path) -> None:
    server = DevServer.start(MODELS_DIR / MODEL, MODEL, tmp_path / "workspace")
    app, running, address = await _service("triton", server.url)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = generate_pb2_grpc.GenerateServiceStub(channel)
            call = stub.Generate(pb.GenerateRequest(bars=64, seed=1), timeout=60)
            first = await call.read()
            assert first.HasField("event")
            server.signal_group(signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                while await call.read() != grpc.aio.EOF:
                    pass
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 10
    finally:
        server.stop()
        await running.server.stop(None)  # type: ignore[attr-defined]
        await app.close()  # type: ignore[attr-defined]
