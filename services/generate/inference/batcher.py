"""Shares decode calls between concurrent generations: one backend call per wave of steps.

Every generation asks for its next step right after sampling its last one, so the steps
of N concurrent generations arrive together. The batcher waits (at most `max_wait_s`)
until every active generation has asked, left-pads their caches to one length, and makes
one backend call for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.generate import metrics
from services.generate.inference.backend import InferenceBackend, ModelSpec, Tensors


@dataclass
class Cache:
    """One generation's key/value cache, [L, H, P, D] each."""

    keys: npt.NDArray[np.float32]
    values: npt.NDArray[np.float32]

    @property
    def length(self) -> int:
        """Number of past positions held."""
        return int(self.keys.shape[2])


@dataclass
class _Step:
    tokens: npt.NDArray[np.int64]      # [T]
    positions: npt.NDArray[np.int64]   # [T]
    cache: Cache
    done: asyncio.Future[tuple[npt.NDArray[np.float32], Cache]] = field(repr=False)


class DecodeBatcher:
    """Groups the decode steps of concurrent generations into shared backend calls."""

    def __init__(self, backend: InferenceBackend, model: ModelSpec, *, max_batch: int = 16,
                 max_wait_s: float = 0.005) -> None:
        self.backend = backend
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Step] = asyncio.Queue()
        self._active = 0
        self._worker: asyncio.Task[None] | None = None

    def empty_cache(self) -> Cache:
        """A cache with no past positions, the start of a generation."""
        m = self.model
        empty = np.zeros((m.n_layers, m.n_heads, 0, m.head_dim), np.float32)
        return Cache(empty, empty)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Counts a generation as active, so the batcher knows how many steps to wait for."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    async def step(self, tokens: list[int], first_position: int,
                   cache: Cache) -> tuple[npt.NDArray[np.float32], Cache]:
        """Feeds tokens after the cache; returns the next-token logits [V] and the new cache."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self.model.name}")
        array = np.asarray(tokens, np.int64)
        positions = np.arange(first_position, first_position + len(array), dtype=np.int64)
        done: asyncio.Future[tuple[npt.NDArray[np.float32], Cache]] = (
            asyncio.get_running_loop().create_future())
        await self._queue.put(_Step(array, positions, cache, done))
        metrics.QUEUE_DEPTH.labels(self.model.name).set(self._queue.qsize())
        return await done

    async def close(self) -> None:
        """Stops the worker that makes the backend calls."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _run(self) -> None:
        while True:
            wave = [await self._queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(wave) < min(self.max_batch, max(self._active, 1)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    wave.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            metrics.QUEUE_DEPTH.labels(self.model.name).set(self._queue.qsize())
            wave = [s for s in wave if not s.done.done()]  # cancelled while queued
            # A prompt (many tokens) and decode steps (one token) never share a call:
            # padding one-token rows to the prompt's length would waste the whole call.
            by_length: dict[int, list[_Step]] = {}
            for step in wave:
                by_length.setdefault(len(step.tokens), []).append(step)
            for group in by_length.values():
                await self._call(group)

    async def _call(self, group: list[_Step]) -> None:
        inputs = _pad(group)
        started = time.perf_counter()
        try:
            outputs = await self.backend.run(self.model.name, inputs)
        except Exception as error:  # every waiting generation gets the backend's error
            for step in group:
                if not step.done.done():
                    step.done.set_exception(error)
            return
        labels = (self.backend.name, self.model.name)
        metrics.INFERENCE_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(*labels).observe(len(group))
        width = inputs["past_keys"].shape[3]
        for row, step in enumerate(group):
            if step.done.done():
                continue
            start = width - step.cache.length
            cache = Cache(outputs["present_keys"][row, :, :, start:],
                          outputs["present_values"][row, :, :, start:])
            step.done.set_result((outputs["logits"][row], cache))


def _pad(group: list[_Step]) -> Tensors:
    """The contract's inputs for rows of equal T, past caches left-padded to one length."""
    width = max(step.cache.length for step in group)
    n_new = len(group[0].tokens)
    layers, heads, _, dim = group[0].cache.keys.shape
    keys = np.zeros((len(group), layers, heads, width, dim), np.float32)
    values = np.zeros_like(keys)
    mask = np.zeros((len(group), width + n_new), np.int64)
    for row, step in enumerate(group):
        start = width - step.cache.length
        keys[row, :, :, start:] = step.cache.keys
        values[row, :, :, start:] = step.cache.values
        mask[row, start:] = 1
    return {"tokens": np.stack([s.tokens for s in group]),
            "positions": np.stack([s.positions for s in group]),
            "attention_mask": mask, "past_keys": keys, "past_values": values}
