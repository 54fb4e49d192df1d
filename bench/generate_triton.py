"""Decode-step latency: Triton (PyTriton, tritonclient gRPC) vs ONNX Runtime in process."""

from __future__ import annotations

import asyncio
import os
import pathlib
import tempfile

import numpy as np

from bench.harness import Latency, Row, load, print_table
from services.generate.inference.backend import ModelSpec, Tensors
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.inference.triton_backend import TritonBackend
from tests.generate.triton_server import TRITON_PYTHON, DevServer

SERVED_MODEL = pathlib.Path(__file__).resolve().parents[1] / "models/generate/cadenza-poly"
# (batch, calls in flight, cached positions P, what it shows)
SETTINGS = ((1, 1, 16, "batch 1, P=16"), (1, 1, 256, "batch 1, P=256"),
            (16, 1, 256, "batch 16 in one call, P=256"),
            (1, 16, 256, "16 concurrent batch-1 calls, P=256"))
MEASURE_S = 3.0


def decode_step(spec: ModelSpec, batch: int, cached: int,
                rng: np.random.Generator) -> Tensors:
    """One new token per row after `cached` cached positions (random cache values)."""
    cache = (batch, spec.n_layers, spec.n_heads, cached, spec.head_dim)
    return {"tokens": np.full((batch, 1), spec.music.STEP, np.int64),
            "positions": np.full((batch, 1), cached, np.int64),
            "attention_mask": np.ones((batch, cached + 1), np.int64),
            "past_keys": rng.standard_normal(cache, np.float32),
            "past_values": rng.standard_normal(cache, np.float32)}


def _model_dir(scratch: pathlib.Path) -> tuple[pathlib.Path, str]:
    if (SERVED_MODEL / "model.onnx").exists():
        return SERVED_MODEL, "trained cadenza-poly"
    from tests.generate.tiny_model import write_tiny_model  # needs torch: only in this case

    spec_shape = {"d_model": 192, "n_layers": 4, "n_heads": 4, "max_positions": 1024}
    return (write_tiny_model(scratch / "cadenza-poly", "cadenza-poly", **spec_shape),
            "untrained graph of cadenza-poly's shape")


def _cell(latency: Latency) -> str:
    return f"{latency.p50_ms:.2f} ms p50 / {latency.calls_per_s:.0f} calls/s"


async def measure(model_dir: pathlib.Path, url: str) -> list[Row]:
    """Times decode calls through Triton and in-process ONNX Runtime on the same inputs."""
    spec = ModelSpec.load(model_dir)
    triton = TritonBackend(url, timeout_s=30)
    local = OnnxRuntimeBackend(["CPUExecutionProvider"], intra_op_threads=1)
    await triton.load(spec)
    await local.load(spec)
    rng = np.random.default_rng(0)
    rows = []
    try:
        for batch, in_flight, cached, setting in SETTINGS:
            inputs = decode_step(spec, batch, cached, rng)
            # The whole cache crosses the wire both ways on every step (the graph is
            # stateless), which is most of Triton's cost at long P.
            wire_mb = 2 * sum(a.nbytes for a in inputs.values()) / 1e6

            async def remote(inputs: Tensors = inputs) -> object:
                return await triton.run(spec.name, inputs)

            async def in_process(inputs: Tensors = inputs) -> object:
                return await local.run(spec.name, inputs)

            ours = await load(remote, in_flight, MEASURE_S, warmup_calls=20)
            reference = await load(in_process, in_flight, MEASURE_S, warmup_calls=20)
            note = f"~{wire_mb:.1f} MB over gRPC per call" + (
                "; Triton's dynamic batcher may merge calls, onnxruntime runs them one by one"
                if in_flight > 1 else "")
            rows.append(Row("decode step", setting, _cell(ours), _cell(reference),
                            f"{ours.p50_ms / reference.p50_ms:.1f}x p50", note))
    finally:
        await triton.close()
        await local.close()
    return rows


def run() -> None:
    """Runs the Triton benchmark against a dev server, or says why it is skipped."""
    if not TRITON_PYTHON.exists():
        print("\ngenerate-triton: skipped, no .venv-triton (run `make triton-env`)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as scratch:
        model_dir, which = _model_dir(pathlib.Path(scratch))
        spec = ModelSpec.load(model_dir)
        server = DevServer.start(model_dir, spec.name, pathlib.Path(scratch) / "workspace")
        try:
            rows = asyncio.run(measure(model_dir, server.url))
        finally:
            server.stop()
    print_table(f"Triton (PyTriton, onnxruntime in a Python model, {os.cpu_count()} CPU cores) "
                f"vs onnxruntime in process, {which}, 1 intra-op thread each", rows,
                "triton over gRPC", "onnxruntime in process")


if __name__ == "__main__":
    run()
