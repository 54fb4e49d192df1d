"""Greedy decoding over the ONNX contract, for torch and ONNX Runtime alike.

A `DecodeStep` is one contract call on numpy arrays; the helpers here drive it three
ways that must agree: with the cache (prefill, then one token a call), without it (the
whole sequence again every call), and as a left-padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES
from training.llm.model import Llama

if TYPE_CHECKING:  # decoding with torch alone does not need onnxruntime
    import onnxruntime

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


class DecodeStep(Protocol):
    """One call of the contract: (tokens, positions, mask, past keys, past values) in."""

    def __call__(self, tokens: Ints, positions: Ints, attention_mask: Ints,
                 past_keys: Floats, past_values: Floats) -> tuple[Floats, Floats, Floats]:
        """logits [B, V], present_keys and present_values [B, L, H, P+T, D]."""


@dataclass(frozen=True)
class CacheShape:
    """The cache's fixed axes: layers, KV heads, head width."""

    n_layers: int
    n_heads: int
    head_dim: int

    def empty(self, batch: int) -> Floats:
        """A cache with no past positions, [B, L, H, 0, D]."""
        return np.zeros((batch, self.n_layers, self.n_heads, 0, self.head_dim), np.float32)


class TorchStep:
    """Our torch model as a DecodeStep."""

    def __init__(self, model: Llama) -> None:
        self.model = model
        c = model.config
        self.cache = CacheShape(c.n_layers, c.n_kv_heads, c.head_dim)

    def __call__(self, tokens: Ints, positions: Ints, attention_mask: Ints,
                 past_keys: Floats, past_values: Floats) -> tuple[Floats, Floats, Floats]:
        """The model's forward on numpy arrays."""
        inputs = [torch.from_numpy(np.ascontiguousarray(a)) for a in
                  (tokens, positions, attention_mask, past_keys, past_values)]
        with torch.inference_mode():
            logits, keys, values = self.model(*inputs)
        return logits.numpy(), keys.numpy(), values.numpy()


class OnnxStep:
    """An onnxruntime session of the exported graph as a DecodeStep."""

    def __init__(self, session: onnxruntime.InferenceSession, cache: CacheShape) -> None:
        self.session = session
        self.cache = cache

    def __call__(self, tokens: Ints, positions: Ints, attention_mask: Ints,
                 past_keys: Floats, past_values: Floats) -> tuple[Floats, Floats, Floats]:
        """One session.run of the five contract inputs."""
        feed = dict(zip(INPUT_NAMES, (tokens, positions, attention_mask, past_keys,
                                      past_values), strict=True))
        logits, keys, values = self.session.run(list(OUTPUT_NAMES), feed)
        return logits, keys, values


def onnx_session(path: str, threads: int = 1) -> onnxruntime.InferenceSession:
    """A CPU session; one thread by default (2-core machines share their cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Ints, Ints, Ints]:
    """tokens, positions, attention_mask [B, longest] for prompts padded on the left.

    Padded slots hold `pad_id` at position 0 with mask 0; each row's real tokens keep
    their true positions 0..n-1.
    """
    longest = max(len(p) for p in prompts)
    tokens = np.full((len(prompts), longest), pad_id, np.int64)
    positions = np.zeros((len(prompts), longest), np.int64)
    mask = np.zeros((len(prompts), longest), np.int64)
    for row, prompt in enumerate(prompts):
        start = longest - len(prompt)
        tokens[row, start:] = prompt
        positions[row, start:] = np.arange(len(prompt))
        mask[row, start:] = 1
    return tokens, positions, mask


@dataclass
class Greedy:
    """Greedy continuations and the logits that chose each token, per row."""

    tokens: list[list[int]]
    logits: list[Floats]          # per step, [B, V]


def greedy_cached(step: DecodeStep, cache: CacheShape, prompts: Sequence[Sequence[int]],
                  n_new: int, pad_id: int = 0) -> Greedy:
    """Prefill the (left-padded) prompts in one call, then one token per call."""
    tokens, positions, mask = left_pad(prompts, pad_id)
    past_keys = past_values = cache.empty(len(prompts))
    next_position = np.array([[len(p)] for p in prompts], np.int64)
    chosen: list[list[int]] = [[] for _ in prompts]
    history: list[Floats] = []
    for _ in range(n_new):
        logits, past_keys, past_values = step(tokens, positions, mask, past_keys, past_values)
        history.append(logits)
        best = logits.argmax(axis=-1)
        for row, token in enumerate(best):
            chosen[row].append(int(token))
        tokens = best.astype(np.int64)[:, None]
        positions = next_position
        next_position = next_position + 1
        mask = np.concatenate([mask, np.ones((len(prompts), 1), np.int64)], axis=1)
    return Greedy(chosen, history)


def greedy_recompute(step: DecodeStep, cache: CacheShape, prompt: Sequence[int],
                     n_new: int) -> Greedy:
    """No cache: every call reads the whole sequence so far (P = 0)."""
    sequence = list(prompt)
    chosen: list[int] = []
    history: list[Floats] = []
    empty = cache.empty(1)
    for _ in range(n_new):
        tokens = np.array([sequence], np.int64)
        positions = np.arange(len(sequence), dtype=np.int64)[None]
        logits, _, _ = step(tokens, positions, np.ones_like(tokens), empty, empty)
        history.append(logits)
        token = int(logits[0].argmax())
        chosen.append(token)
        sequence.append(token)
    return Greedy([chosen], history)


def prompt_logits(step: DecodeStep, cache: CacheShape, prompt: Sequence[int]) -> Floats:
    """Next-token logits [V] after the whole prompt, in one call without a cache."""
    tokens = np.array([list(prompt)], np.int64)
    positions = np.arange(len(prompt), dtype=np.int64)[None]
    empty = cache.empty(1)
    logits, _, _ = step(tokens, positions, np.ones_like(tokens), empty, empty)
    last: Floats = logits[0]
    return last


def chunked_prefill(step: DecodeStep, cache: CacheShape, prompt: Sequence[int],
                    chunk: int) -> tuple[Floats, Floats, Floats]:
    """The prompt fed `chunk` tokens a call (T > 1 with P > 0): logits and final cache."""
    past_keys = past_values = cache.empty(1)
    logits: Any = None
    for start in range(0, len(prompt), chunk):
        piece = list(prompt[start:start + chunk])
        tokens = np.array([piece], np.int64)
        positions = np.arange(start, start + len(piece), dtype=np.int64)[None]
        mask = np.ones((1, start + len(piece)), np.int64)
        logits, past_keys, past_values = step(tokens, positions, mask, past_keys, past_values)
    return logits[0], past_keys, past_values
