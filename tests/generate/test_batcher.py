"""The decode batcher: concurrent steps share one call and get their own answers."""

from __future__ import annotations

import asyncio
import pathlib

import numpy as np
import pytest

from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from tests.generate.tiny_model import write_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    return ModelSpec.load(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-poly"))


async def _decode(batcher: DecodeBatcher, prompt: list[int], steps: int) -> list[np.ndarray]:
    """Greedy decode; the logits after each fed token."""
    with batcher.session():
        logits, cache = await batcher.step(prompt, 0, batcher.empty_cache())
        seen = [logits]
        position = len(prompt)
        for _ in range(steps):
            token = int(np.argmax(logits))
            logits, cache = await batcher.step([token], position, cache)
            position += 1
            seen.append(logits)
        return seen


async def test_concurrent_generations_share_calls_and_match_running_alone(tiny: ModelSpec) -> None:
    backend = OnnxRuntimeBackend([], 1)
    await backend.load(tiny)
    prompts = [[1, 5, 40, 3], [1, 6, 41, 3, 60, 3, 61], [1, 7, 42]]
    alone = DecodeBatcher(backend, tiny, max_batch=1, max_wait_s=0)
    expected = [await _decode(alone, p, 12) for p in prompts]
    calls: list[int] = []
    original = backend.run

    async def counting(model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(inputs["tokens"].shape[0])
        return await original(model, inputs)

    backend.run = counting  # type: ignore[method-assign]
    shared = DecodeBatcher(backend, tiny, max_batch=8, max_wait_s=0.05)
    got = await asyncio.gather(*(_decode(shared, p, 12) for p in prompts))
    for mine, theirs in zip(got, expected, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
    assert max(calls) == 3, f"decode steps were never batched: {calls}"
    assert len(calls) < 3 * 13
    await alone.close()
    await shared.close()
    await backend.close()


async def test_a_backend_failure_reaches_every_waiting_generation(tiny: ModelSpec) -> None:
    backend = OnnxRuntimeBackend([], 1)
    await backend.load(tiny)

    async def broken(model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise ConnectionError("backend went away")

    backend.run = broken  # type: ignore[method-assign]
    batcher = DecodeBatcher(backend, tiny, max_batch=4, max_wait_s=0.01)
    results = await asyncio.wait_for(asyncio.gather(
        *(batcher.step([1, 2], 0, batcher.empty_cache()) for _ in range(3)),
        return_exceptions=True), timeout=5)
    assert all(isinstance(r, ConnectionError) for r in results)
    await batcher.close()
    await backend.close()


def test_empty_providers_means_cpu_here() -> None:
    assert OnnxRuntimeBackend([], 1).providers[-1] == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="not in this build"):
        OnnxRuntimeBackend(["NoSuchExecutionProvider"], 1)


@pytest.mark.parametrize("folder", ["tiny-poly"])
def test_model_spec_reads_the_folder(tiny: ModelSpec, folder: str) -> None:
    assert tiny.name == folder and tiny.onnx_path.is_file()
    assert isinstance(tiny.folder, pathlib.Path)
