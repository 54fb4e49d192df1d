"""TritonBackend against a real Triton server (PyTriton, in .venv-triton) on loopback."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import tritonclient.grpc as triton_sync
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from cadenza.kit.errors import FailedPrecondition, NotFound, Unavailable
from services.generate.inference.backend import ModelSpec
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.inference.triton_backend import TritonBackend
from services.generate.inference.triton_repo import render_config
from tests.generate.tiny_model import write_tiny_model
from tests.generate.triton_server import TRITON_PYTHON, DevServer
from tests.support.addresses import NOWHERE

needs_triton = pytest.mark.skipif(
    not TRITON_PYTHON.exists(),
    reason="no .venv-triton (PyTriton pins numpy<2, so it has its own venv): run "
           "`make triton-env`; `make test` creates it")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny-poly")


@pytest.fixture(scope="module")
def spec(model_dir: pathlib.Path) -> ModelSpec:
    return ModelSpec.load(model_dir)


@pytest.fixture(scope="module")
def server(model_dir: pathlib.Path, spec: ModelSpec,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    running = DevServer.start(model_dir, spec.name,
                              tmp_path_factory.mktemp("triton") / "workspace")
    yield running
    running.stop()


def left_padded_prompt(spec: ModelSpec) -> dict[str, np.ndarray]:
    """Two prompts, 3 and 5 tokens long, in one call: row 0 left-padded by 2, empty cache."""
    vocab = spec.music
    short = [vocab.BOS, vocab.on(67), vocab.STEP]
    long = [vocab.BOS, vocab.on(72), vocab.on(64), vocab.STEP, vocab.hold(72)]
    tokens = np.array([[vocab.PAD, vocab.PAD, *short], long], np.int64)
    positions = np.array([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]], np.int64)
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], np.int64)
    cache = spec.empty_cache(2)
    return {"tokens": tokens, "positions": positions, "attention_mask": mask,
            "past_keys": cache, "past_values": cache}


def next_step(spec: ModelSpec, outputs: dict[str, np.ndarray],
              previous: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One decode step after `previous`: one new token per row, the cache passed back."""
    step = spec.music.on(55)
    last = previous["positions"][:, -1:]
    return {"tokens": np.array([[step], [step]], np.int64), "positions": last + 1,
            "attention_mask": np.concatenate(
                [previous["attention_mask"], np.ones((2, 1), np.int64)], axis=1),
            "past_keys": outputs["present_keys"], "past_values": outputs["present_values"]}


def assert_same_outputs(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert ours.keys() == reference.keys()
    for name, expected in reference.items():
        assert ours[name].shape == expected.shape, name
        assert ours[name].dtype == expected.dtype, name
        np.testing.assert_allclose(ours[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)


@needs_triton
async def test_triton_outputs_equal_onnxruntime_in_process_for_a_left_padded_batch(
        server: DevServer, spec: ModelSpec) -> None:
    triton = TritonBackend(server.url, timeout_s=10)
    local = OnnxRuntimeBackend(["CPUExecutionProvider"], intra_op_threads=1)
    try:
        await triton.load(spec)
        await local.load(spec)
        prompt = left_padded_prompt(spec)
        remote_prompt = await triton.run(spec.name, prompt)
        local_prompt = await local.run(spec.name, prompt)
        assert_same_outputs(remote_prompt, local_prompt)
        assert remote_prompt["present_keys"].shape[3] == 5  # the empty cache stayed empty

        step = next_step(spec, local_prompt, prompt)
        assert_same_outputs(await triton.run(spec.name, step), await local.run(spec.name, step))
    finally:
        await triton.close()
        await local.close()


@needs_triton
def test_dev_server_declares_what_the_committed_config_declares(
        server: DevServer, spec: ModelSpec) -> None:
    written = text_format.Parse(render_config(
        {"name": spec.name, "n_layers": spec.n_layers, "n_heads": spec.n_heads,
         "head_dim": spec.head_dim, "vocabulary": {"size": spec.vocab_size}}),
        model_config_pb2.ModelConfig())
    with triton_sync.InferenceServerClient(server.url) as client:
        served = client.get_model_config(spec.name).config

    def tensors(config: model_config_pb2.ModelConfig) -> list[tuple[str, int, list[int]]]:
        return [(t.name, t.data_type, list(t.dims)) for t in [*config.input, *config.output]]

    assert served.name == written.name
    assert served.max_batch_size == written.max_batch_size
    assert tensors(served) == tensors(written)
    assert (served.dynamic_batching.max_queue_delay_microseconds
            == written.dynamic_batching.max_queue_delay_microseconds)


@needs_triton
async def test_concurrent_same_shape_calls_share_batched_executions(
        server: DevServer, spec: ModelSpec) -> None:
    triton = TritonBackend(server.url, timeout_s=10)
    await triton.load(spec)
    one_row = {name: array[1:] for name, array in left_padded_prompt(spec).items()}
    with triton_sync.InferenceServerClient(server.url) as client:
        def counts() -> tuple[int, int]:
            stats = client.get_inference_statistics(spec.name).model_stats[0]
            return stats.inference_count, stats.execution_count

        inferences_before, executions_before = counts()
        try:
            results = await asyncio.gather(*(triton.run(spec.name, one_row) for _ in range(16)))
        finally:
            await triton.close()
        # Triton records an execution's statistics after it has sent the responses, so
        # on a loaded machine the last batch can be missing for a moment: wait for it.
        deadline = time.monotonic() + 10
        inferences, executions = counts()
        while inferences - inferences_before < 16 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            inferences, executions = counts()
    assert inferences - inferences_before == 16
    assert executions - executions_before < 16  # the dynamic batcher merged some calls
    for result in results[1:]:  # merged or not, every caller got its own row back
        np.testing.assert_allclose(result["logits"], results[0]["logits"], atol=1e-5)


@needs_triton
async def test_unknown_model_is_not_found(server: DevServer, spec: ModelSpec) -> None:
    triton = TritonBackend(server.url, timeout_s=10, load_timeout_s=0.5)
    try:
        with pytest.raises(NotFound):
            await triton.run("no-such-model", left_padded_prompt(spec))
        with pytest.raises(NotFound):
            await triton.load(replace(spec, name="no-such-model"))
    finally:
        await triton.close()


@needs_triton
async def test_load_refuses_a_served_model_with_other_shapes(
        server: DevServer, spec: ModelSpec) -> None:
    triton = TritonBackend(server.url, timeout_s=10)
    try:
        with pytest.raises(FailedPrecondition, match="tensors"):
            await triton.load(replace(spec, n_layers=spec.n_layers + 1))
    finally:
        await triton.close()


async def test_load_with_no_server_is_unavailable_after_its_deadline(spec: ModelSpec) -> None:
    triton = TritonBackend(NOWHERE, timeout_s=1, load_timeout_s=1)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await triton.load(spec)
    finally:
        await triton.close()
    assert time.monotonic() - started < 5


@needs_triton
async def test_hung_then_killed_server_gives_unavailable_promptly(
        model_dir: pathlib.Path, spec: ModelSpec, tmp_path: pathlib.Path) -> None:
    server = DevServer.start(model_dir, spec.name, tmp_path / "workspace")
    impatient = TritonBackend(server.url, timeout_s=1.0)
    patient = TritonBackend(server.url, timeout_s=30.0)
    try:
        await impatient.load(spec)
        await patient.load(spec)
        prompt = left_padded_prompt(spec)
        await patient.run(spec.name, prompt)

        server.signal_group(signal.SIGSTOP)  # alive but silent: only the deadline helps
        started = time.monotonic()
        with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED"):
            await impatient.run(spec.name, prompt)
        assert time.monotonic() - started < 3

        in_flight = asyncio.create_task(patient.run(spec.name, prompt))
        await asyncio.sleep(0.3)
        assert not in_flight.done()
        started = time.monotonic()
        server.signal_group(signal.SIGKILL)  # gone mid-call, 30 s before its deadline
        with pytest.raises(Unavailable, match="UNAVAILABLE"):
            await in_flight
        assert time.monotonic() - started < 3

        started = time.monotonic()
        with pytest.raises(Unavailable, match="UNAVAILABLE"):  # refused: fails fast
            await patient.run(spec.name, prompt)
        assert time.monotonic() - started < 1
    finally:
        await impatient.close()
        await patient.close()
        server.stop()
