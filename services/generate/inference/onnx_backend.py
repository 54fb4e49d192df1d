"""ONNX Runtime in process: one session per model, calls on a bounded executor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import onnxruntime as ort

from cadenza.kit.errors import FailedPrecondition, NotFound
from services.generate.inference.backend import ModelSpec, TensorContract, Tensors

logger = logging.getLogger(__name__)


def choose_providers(requested: list[str]) -> list[str]:
    """The requested execution providers this build has, CPU always last.

    Empty `requested` means CUDA when a GPU build is installed, else CPU. Asking for a
    provider that is missing is a configuration error, not a silent fallback.
    """
    available = ort.get_available_providers()
    if not requested:
        requested = [p for p in ("CUDAExecutionProvider",) if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ValueError(f"ONNX Runtime providers {missing} are not in this build "
                         f"(available: {available})")
    return [p for p in requested if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """InferenceBackend running ONNX models in process with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, providers: list[str], intra_op_threads: int = 0) -> None:
        self.providers = choose_providers(providers)
        self._intra_op_threads = intra_op_threads
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._output_names: dict[str, list[str]] = {}
        # One call at a time: ONNX Runtime parallelises inside a call, and batching many
        # requests into one call is the batcher's job.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")

    async def load(self, model: ModelSpec) -> None:
        """Opens the model's session and checks its inputs and outputs against the contract."""
        session = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._open, model)
        inputs, outputs = model.tensors()
        _check_tensors(model, "inputs", session.get_inputs(), inputs)
        _check_tensors(model, "outputs", session.get_outputs(), outputs)
        self._sessions[model.name] = session
        self._output_names[model.name] = [t.name for t in outputs]
        logger.info("loaded %s on %s", model.name, session.get_providers())

    def _open(self, model: ModelSpec) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        return ort.InferenceSession(str(model.onnx_path), options, providers=self.providers)

    async def run(self, model_name: str, inputs: Tensors) -> Tensors:
        """One call of a loaded model (a decode step, synthesiser frames) on the executor."""
        session = self._sessions.get(model_name)
        if session is None:
            raise NotFound(f"model {model_name!r} is not loaded in onnxruntime")
        names = self._output_names[model_name]
        outputs = await asyncio.get_running_loop().run_in_executor(
            self._executor, session.run, names, inputs)
        return dict(zip(names, outputs, strict=True))

    async def close(self) -> None:
        """Drops the sessions and stops the executor."""
        self._sessions.clear()
        self._output_names.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


_ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}


def _check_tensors(model: ModelSpec, kind: str, served: Sequence[Any],
                   expected: Sequence[TensorContract]) -> None:
    """The graph's tensors must be the contract's: names, dtypes and every fixed size.

    A size the graph leaves symbolic (batch, frames) matches anything; one it fixes must
    equal the contract's where the contract fixes it too (-1 there means any size).
    """
    have = {t.name: (_ORT_TYPES.get(t.type, t.type),
                     tuple(d if isinstance(d, int) else -1 for d in t.shape)) for t in served}
    want = {t.name: (str(t.dtype), t.shape) for t in expected}
    mismatched = set(have) != set(want) or any(
        have[name][0] != dtype or len(have[name][1]) != len(shape)
        or any(h != w for h, w in zip(have[name][1], shape, strict=True) if h >= 0 and w >= 0)
        for name, (dtype, shape) in want.items())
    if mismatched:
        raise FailedPrecondition(f"{model.onnx_path} has {kind} {have}; the {model.modality} "
                                 f"contract of model.json says {want}")
