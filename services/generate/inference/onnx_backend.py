"""ONNX Runtime in process: one session per model, calls on a bounded executor."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import onnxruntime as ort

from cadenza.kit.errors import FailedPrecondition, NotFound
from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES, ModelSpec, Tensors

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
        # One call at a time: ONNX Runtime parallelises inside a call, and batching many
        # requests into one call is the batcher's job.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")

    async def load(self, model: ModelSpec) -> None:
        """Opens the model's session and checks its inputs and outputs against the contract."""
        session = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._open, model)
        names = tuple(i.name for i in session.get_inputs())
        outputs = tuple(o.name for o in session.get_outputs())
        if set(names) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
            raise FailedPrecondition(f"{model.onnx_path} has inputs {names} and outputs "
                                     f"{outputs}; expected {INPUT_NAMES} -> {OUTPUT_NAMES}")
        self._sessions[model.name] = session
        logger.info("loaded %s on %s", model.name, session.get_providers())

    def _open(self, model: ModelSpec) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        return ort.InferenceSession(str(model.onnx_path), options, providers=self.providers)

    async def run(self, model_name: str, inputs: Tensors) -> Tensors:
        """One decode call of a loaded model on the backend's executor."""
        session = self._sessions.get(model_name)
        if session is None:
            raise NotFound(f"model {model_name!r} is not loaded in onnxruntime")
        outputs = await asyncio.get_running_loop().run_in_executor(
            self._executor, session.run, list(OUTPUT_NAMES), inputs)
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))

    async def close(self) -> None:
        """Drops the sessions and stops the executor."""
        self._sessions.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
