"""Triton over gRPC (tritonclient asyncio): every model call goes to a Triton server."""

from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from cadenza.kit.errors import (
    CadenzaError,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES, ModelSpec, Tensors

logger = logging.getLogger(__name__)

POLL_S = 0.2
# The server is gone, refused the connection or did not answer in time: the caller sees
# UNAVAILABLE either way (our per-call deadline, not theirs, ran out).
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def status_code(error: InferenceServerException) -> grpc.StatusCode | None:
    """The gRPC status code tritonclient keeps as text ("StatusCode.NOT_FOUND")."""
    name = (error.status() or "").removeprefix("StatusCode.")
    return grpc.StatusCode[name] if name in grpc.StatusCode.__members__ else None


class TritonBackend:
    """InferenceBackend sending every model call to a Triton server over gRPC."""

    name = "triton"

    def __init__(self, url: str, timeout_s: float, load_timeout_s: float = 60.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self._client: InferenceServerClient | None = None
        self._loaded: dict[str, ModelSpec] = {}

    def _connect(self) -> InferenceServerClient:
        # Made on first use, inside the running event loop that grpc.aio binds it to.
        if self._client is None:
            self._client = InferenceServerClient(self.url)
        return self._client

    def _error(self, error: InferenceServerException, what: str) -> CadenzaError:
        code = status_code(error)
        where = f"triton at {self.url}: {what}"
        if code in _UNREACHABLE:
            return Unavailable(f"{where}: {code.name} ({error.message()})")
        if code is grpc.StatusCode.NOT_FOUND:
            return NotFound(f"{where}: {error.message()}")
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return ResourceExhausted(f"{where}: {error.message()}")
        # Anything else is a fault on our side of the wire or inside the model (Triton's
        # message may hold a traceback): log it whole, tell the caller less.
        logger.error("%s failed: %s", where, error)
        return CadenzaError(f"{where} failed ({code.name if code else 'unknown status'}); "
                            "see the generate service log")

    async def load(self, model: ModelSpec) -> None:
        """Waits until the server is up and serves `model.name`, then checks its tensors."""
        client = self._connect()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.load_timeout_s
        last: InferenceServerException | None = None
        while True:
            try:
                if await client.is_model_ready(model.name, client_timeout=self.timeout_s):
                    break
                last = None
            except InferenceServerException as error:
                if status_code(error) not in _UNREACHABLE:
                    raise self._error(error, f"is {model.name} ready") from error
                last = error
            if loop.time() > deadline:
                if last is not None:
                    raise self._error(last, f"no answer within {self.load_timeout_s:g} s"
                                      ) from last
                # A server that answers but never has the model: not in its repository.
                raise NotFound(f"triton at {self.url} has no ready model {model.name!r} "
                               f"after {self.load_timeout_s:g} s; is it in the model "
                               "repository (services/generate/inference/triton_repo.py)?")
            await asyncio.sleep(POLL_S)
        try:
            metadata = await client.get_model_metadata(model.name,
                                                       client_timeout=self.timeout_s)
        except InferenceServerException as error:
            raise self._error(error, f"metadata of {model.name}") from error
        _check_tensors(model, metadata, self.url)
        self._loaded[model.name] = model
        logger.info("triton at %s serves %s", self.url, model.name)

    async def run(self, model_name: str, inputs: Tensors) -> Tensors:
        """One model call on the Triton server; remote failures become domain errors.

        A model not loaded here is sent as a decoder (Triton answers NOT_FOUND for one it
        does not serve either).
        """
        spec = self._loaded.get(model_name)
        decoder = spec is None or spec.decoder
        input_names = INPUT_NAMES if spec is None else spec.input_names
        output_names = OUTPUT_NAMES if spec is None else spec.output_names
        # Only a decoder's first step has zero-size tensors (an empty cache).
        padded = decoder and inputs["past_keys"].shape[3] == 0
        if padded:
            inputs = _pad_one_past_slot(inputs)
        request = []
        for name in input_names:
            array = np.ascontiguousarray(inputs[name])
            tensor = InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        try:
            result = await self._connect().infer(
                model_name, request, outputs=[InferRequestedOutput(n) for n in output_names],
                client_timeout=self.timeout_s)
        except InferenceServerException as error:
            raise self._error(error, f"infer {model_name}") from error
        outputs = {name: result.as_numpy(name) for name in output_names}
        if padded:
            for name in ("present_keys", "present_values"):
                outputs[name] = outputs[name][:, :, :, 1:]
        return outputs

    async def close(self) -> None:
        """Closes the gRPC client."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def _pad_one_past_slot(inputs: Tensors) -> Tensors:
    """An empty cache (P == 0) as one masked-out slot: the contract's own left padding.

    Zero-size tensors do not survive PyTriton 0.7's shared-memory hand-off (memoryview
    refuses to cast a shape with a 0), and Triton backends differ on them; a slot with
    mask 0 is never attended, so the logits and the new cache entries are the same.
    """
    keys = inputs["past_keys"]
    slot = np.zeros((*keys.shape[:3], 1, keys.shape[4]), keys.dtype)
    mask = inputs["attention_mask"]
    return {**inputs, "past_keys": slot, "past_values": slot,
            "attention_mask": np.concatenate([np.zeros((mask.shape[0], 1), mask.dtype), mask],
                                             axis=1)}


def _check_tensors(model: ModelSpec, metadata: object, url: str) -> None:
    """The served tensors must be the model's contract: a decoder's with its L, H, D and V,
    an audio model's with its embedding, harmonic and noise-band sizes."""
    inputs, outputs = model.tensors()
    expected = {t.name: (t.triton_type, list(t.shape)) for t in [*inputs, *outputs]}
    served = {t.name: (t.datatype, list(t.shape))
              for t in [*metadata.inputs, *metadata.outputs]}  # type: ignore[attr-defined]
    if served != expected:
        raise FailedPrecondition(f"triton at {url} serves {model.name} with tensors {served}; "
                                 f"model.json says {expected}")
