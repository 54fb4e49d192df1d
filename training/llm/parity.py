"""Parity of the converted SmolLM2: our torch model vs ONNX Runtime, and vs transformers.

    python -m training.llm.parity [--out models/generate/smollm2-135m-instruct]

checks our torch model against transformers' own Llama loaded from the same GGUF
(logits, cached keys, 32 greedy tokens on 8 prompts, and the tokenizer), prints the
figures and writes them into the folder's model.json and MODEL_CARD.md; it exits 1 on
any difference. `training.llm.convert` runs the torch-vs-ONNX half itself (and fails on
it); this half is separate because it adds about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.llm.card import write_card
from training.llm.decode import (
    CacheShape,
    DecodeStep,
    Greedy,
    TorchStep,
    chunked_prefill,
    greedy_cached,
    greedy_recompute,
)
from training.llm.model import Llama
from training.llm.sources import DEFAULT_OUT, load_sources
from training.llm.tokenizer import CHECK_STRINGS, render_chat, transformers_mismatches

logger = logging.getLogger(__name__)

NEW_TOKENS = 32
# Torch vs ONNX Runtime, on next-token logits; the conversion fails above it.
MAX_ABS_LOGIT_DIFF = 1e-3
RAW_PROMPTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """',
    "Once upon a time, in a small village by the sea,",
    "A chord progression in C major: C, Am, F,",
]
CHAT_PROMPTS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is a fugue? Answer in one sentence."}],
    [{"role": "system", "content": "You are a concise music theory tutor."},
     {"role": "user", "content": "Name the notes of a G major triad."}],
    [{"role": "user", "content": "Write a haiku about the piano."}],
    [{"role": "user", "content": "Translate 'good morning' into French."}],
]
BATCH = (0, 4, 5)  # indexes into prompt_texts(): three different lengths


def prompt_texts(chat_template: str) -> list[str]:
    """The 8 parity prompts: 4 plain texts, then 4 chats rendered with the template."""
    chats = [render_chat(chat_template, messages) for messages in CHAT_PROMPTS]
    return [*RAW_PROMPTS, *chats]


@dataclass
class OnnxParity:
    """Torch vs ONNX Runtime figures; `failures` empty means the conversion holds."""

    prompts: int
    new_tokens: int
    max_abs_logit_diff: float = 0.0      # after the prompt and every cached greedy step
    greedy_identical: int = 0            # prompts where all decode paths chose the same tokens
    batch_rows_identical: int = 0        # rows of the left-padded batch equal to their solo run
    batch_max_abs_logit_diff: float = 0.0
    chunked_max_abs_logit_diff: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def greedy_identical_fraction(self) -> float:
        """Share of prompts whose greedy continuations agree on every path."""
        return self.greedy_identical / self.prompts


def _max_diff(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def onnx_parity(torch_step: DecodeStep, onnx_step: DecodeStep, cache: CacheShape,
                prompts: Sequence[Sequence[int]], *, new_tokens: int = NEW_TOKENS,
                batch: Sequence[int] = BATCH, pad_id: int = 0) -> OnnxParity:
    """Compares torch and ORT on `prompts` (token ids) every way the contract is used.

    Per prompt: logits after the prompt; greedy `new_tokens` with the cache in torch and
    in ORT, and without the cache in ORT (full recompute every token). Then the `batch`
    prompts left-padded into one batch, and one prompt fed in chunks (T > 1 with P > 0).
    """
    report = OnnxParity(prompts=len(prompts), new_tokens=new_tokens)
    differing: set[int] = set()
    solo: list[Greedy] = []
    for index, prompt in enumerate(prompts):
        # The first call of a cached greedy run is the whole prompt at P = 0.
        by_torch = greedy_cached(torch_step, cache, [prompt], new_tokens, pad_id)
        by_onnx = greedy_cached(onnx_step, cache, [prompt], new_tokens, pad_id)
        recomputed = greedy_recompute(onnx_step, cache, prompt, new_tokens)
        diff = _stepwise_diff(by_torch, 0, by_onnx, 0)
        report.max_abs_logit_diff = max(report.max_abs_logit_diff, diff)
        if by_torch.tokens[0] != by_onnx.tokens[0]:
            report.failures.append(f"prompt {index}: torch and ORT greedy differ")
            differing.add(index)
        if recomputed.tokens[0] != by_onnx.tokens[0]:
            report.failures.append(f"prompt {index}: cached and recomputed greedy differ")
            differing.add(index)
        solo.append(by_onnx)
        logger.info("prompt %d: %d tokens, max |torch - ORT| %.2e, greedy %s", index,
                    len(prompt), diff, "DIFFER" if index in differing else "identical")

    batched = greedy_cached(onnx_step, cache, [prompts[i] for i in batch], new_tokens, pad_id)
    for row, index in enumerate(batch):
        report.batch_max_abs_logit_diff = max(report.batch_max_abs_logit_diff,
                                              _stepwise_diff(batched, row, solo[index], 0))
        if batched.tokens[row] == solo[index].tokens[0]:
            report.batch_rows_identical += 1
        else:
            report.failures.append(f"prompt {index}: left-padded batch differs from solo")
            differing.add(index)
    report.greedy_identical = len(prompts) - len(differing)

    longest = max(prompts, key=len)
    whole = solo[prompts.index(longest)].logits[0][0]
    for chunk in (3, 7):
        chunked, _, _ = chunked_prefill(onnx_step, cache, longest, chunk)
        report.chunked_max_abs_logit_diff = max(report.chunked_max_abs_logit_diff,
                                                _max_diff(chunked, whole))
    for name in ("max_abs_logit_diff", "batch_max_abs_logit_diff",
                 "chunked_max_abs_logit_diff"):
        if getattr(report, name) > MAX_ABS_LOGIT_DIFF:
            report.failures.append(f"{name} = {getattr(report, name):.2e} > "
                                   f"{MAX_ABS_LOGIT_DIFF:g}")
    return report


def _stepwise_diff(a: Greedy, row_a: int, b: Greedy, row_b: int) -> float:
    """Largest logit difference over the steps where both runs had fed the same tokens."""
    agreeing = _common_prefix(a.tokens[row_a], b.tokens[row_b]) + 1
    return max(_max_diff(x[row_a], y[row_b])
               for x, y in zip(a.logits[:agreeing], b.logits[:agreeing], strict=False))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


@dataclass
class TransformersParity:
    """Our torch model vs transformers' LlamaForCausalLM loaded from the same GGUF."""

    prompts: int
    new_tokens: int
    max_abs_logit_diff: float = 0.0      # after the prompt and every greedy step
    max_abs_key_diff: float = 0.0        # our present_keys vs transformers' cached keys
    greedy_identical: int = 0
    tokenizer_mismatches: int = 0
    transformers_version: str = ""
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def transformers_reference(gguf_path: Path) -> Any:
    """transformers' own Llama with the GGUF's weights, as its GGUF loader prepares them.

    `from_pretrained(gguf_file=...)` insists on the accelerate package, which only places
    weights on devices; the same loader (`load_gguf_checkpoint`, which dequantises and
    undoes llama.cpp's query/key permutation itself) fills a plain LlamaForCausalLM.
    """
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    reference = LlamaForCausalLM(config)
    loaded = load_gguf_checkpoint(  # type: ignore[no-untyped-call]
        str(gguf_path), return_tensors=True, model_to_load=reference)
    state = {name: torch.as_tensor(np.asarray(value)) for name, value in
             loaded["tensors"].items()}
    result = reference.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) - {"lm_head.weight"}:
        raise RuntimeError(f"transformers' Llama did not take the GGUF: {result}")
    reference.tie_weights()
    reference.train(False)
    return reference


def transformers_parity(model: Llama, gguf_path: Path, prompts: Sequence[Sequence[int]],
                        texts: Sequence[str], tokenizer: Any,
                        new_tokens: int = NEW_TOKENS) -> TransformersParity:
    """Logits, cached keys and greedy continuations against transformers; and tokenizers."""
    import transformers

    started = time.perf_counter()
    report = TransformersParity(prompts=len(prompts), new_tokens=new_tokens,
                                transformers_version=transformers.__version__)
    mismatches = transformers_mismatches(tokenizer, gguf_path, [*CHECK_STRINGS, *texts])
    report.tokenizer_mismatches = len(mismatches)
    for text, ours, theirs in mismatches:
        report.failures.append(f"tokenizer differs on {text!r}: {ours[:8]} vs {theirs[:8]}")
    reference = transformers_reference(gguf_path)
    step = TorchStep(model)
    for index, prompt in enumerate(prompts):
        theirs, their_logits, their_keys = _transformers_greedy(reference, prompt, new_tokens)
        mine = greedy_cached(step, step.cache, [prompt], new_tokens)
        with torch.inference_mode():
            ids = torch.tensor([list(prompt)])
            empty = torch.from_numpy(step.cache.empty(1))
            _, keys, _ = model(ids, torch.arange(len(prompt))[None], torch.ones_like(ids),
                               empty, empty)
        report.max_abs_key_diff = max(report.max_abs_key_diff,
                                      _max_diff(keys[0].numpy(), their_keys))
        # Step by step while both fed the same tokens (after a split they see other text).
        agreeing = _common_prefix(mine.tokens[0], theirs) + 1
        for step_logits, other in zip(mine.logits[:agreeing], their_logits[:agreeing],
                                      strict=False):
            report.max_abs_logit_diff = max(report.max_abs_logit_diff,
                                            _max_diff(step_logits[0], other))
        if mine.tokens[0] == theirs:
            report.greedy_identical += 1
        else:
            report.failures.append(f"prompt {index}: greedy differs from transformers "
                                   f"after {agreeing - 1} tokens")
    report.seconds = time.perf_counter() - started
    return report


def _transformers_greedy(reference: Any, prompt: Sequence[int], new_tokens: int
                         ) -> tuple[list[int], list[np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """transformers' greedy tokens, the logits choosing each, and its cached prompt keys.

    A plain loop over its forward and cache, not `generate`, which would stop or bend
    the choice at end-of-turn tokens.
    """
    chosen: list[int] = []
    logits: list[np.ndarray[Any, Any]] = []
    with torch.inference_mode():
        out = reference(input_ids=torch.tensor([list(prompt)]), use_cache=True)
        cache = out.cache
        prompt_keys = np.stack([layer.keys[0].numpy().copy() for layer in cache.layers])
        for _ in range(new_tokens):
            last = out.logits[0, -1]
            logits.append(last.numpy().copy())
            chosen.append(int(last.argmax()))
            out = reference(input_ids=torch.tensor([[chosen[-1]]]), cache=cache,
                            use_cache=True)
            cache = out.cache
    return chosen, logits, prompt_keys


def _update_folder(folder: Path, report: TransformersParity) -> None:
    """Writes the transformers figure into model.json and MODEL_CARD.md."""
    meta = json.loads((folder / "model.json").read_text())
    meta["card"]["metrics"]["parity_max_abs_logit_diff_torch_hf"] = float(
        f"{report.max_abs_logit_diff:.3g}")
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_card(folder, meta, transformers_report=asdict(report))


def check_folder(folder: Path) -> TransformersParity:
    """Runs the transformers parity on a converted folder and records it there."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from the GGUF
    gguf_path, model, tokenizer = load_sources()
    meta = json.loads((folder / "model.json").read_text())
    texts = prompt_texts(meta["text"]["chat_template"])
    prompts = [tokenizer.encode(t).ids for t in texts]
    report = transformers_parity(model, gguf_path, prompts, texts, tokenizer)
    logger.info("transformers %s: max |ours - transformers| logits %.2e, keys %.2e; greedy "
                "identical %d/%d; tokenizer mismatches %d (%.0f s)",
                report.transformers_version, report.max_abs_logit_diff,
                report.max_abs_key_diff, report.greedy_identical, report.prompts,
                report.tokenizer_mismatches, report.seconds)
    for failure in report.failures:
        logger.error("%s", failure)
    _update_folder(folder, report)
    return report


def main() -> int:
    """Command line: transformers parity on a converted folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the converted folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    return 1 if check_folder(args.out).failures else 0


if __name__ == "__main__":
    sys.exit(main())
