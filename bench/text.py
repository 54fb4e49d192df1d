"""Text generation speed: the served path (ONNX Runtime, key/value cache, shared decode
calls) against torch eager without a cache and against llama.cpp on the same GGUF.

- Tokens/s: N concurrent greedy completions of NEW_TOKENS tokens each, wall-clock over
  all of them. Time to first token: from the request to the first token, median.
- torch eager, no cache: our torch network (training/llm) re-running the whole sequence
  for every new token, the N sequences in one batch.
- llama.cpp (llama-cpp-python, built from source in .venv-llama), one sequence at a time:
  speed on the GGUF as shipped (Q4_1 kernels), and exactness on the same weights
  dequantised to an F32 GGUF (bench/gguf_f32.py): greedy tokens compared with ours on
  three prompts.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import statistics
import subprocess
import time

import torch

from bench.harness import Row, print_table
from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.inference.sampling import Sampling
from services.generate.text.completion import TextRequest, complete
from services.generate.text.model import Message, TextModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "generate" / "smollm2-135m-instruct"
LLAMA_PYTHON = ROOT / ".venv-llama" / "bin" / "python"
GGUF = ROOT / ".cache" / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_F32 = GGUF.with_name("SmolLM2-135M-Instruct.F32.gguf")
PARITY_QUESTIONS = (QUESTION := "Write a short poem about the sea at night.",
                    "What is a fugue?", "List three colours.")
NEW_TOKENS = 64
CONCURRENCY = (1, 16)
THREADS = 2


async def _ours(model: TextModel, concurrency: int) -> tuple[float, float]:
    """(tokens/s over all sequences, median time to first token)."""
    request = TextRequest(messages=(Message("user", QUESTION),), max_tokens=NEW_TOKENS,
                          sampling=Sampling(temperature=0.0), seed=0)
    firsts: list[float] = []

    async def one() -> int:
        started = time.perf_counter()
        first = True
        async for item in complete(model, request):
            if isinstance(item, str):
                if first:
                    firsts.append(time.perf_counter() - started)
                    first = False
            else:
                return item.completion_tokens
        return 0

    started = time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, statistics.median(firsts)


async def _greedy_ids(model: TextModel, prompt: list[int], count: int) -> list[int]:
    """The first `count` greedy token ids after the prompt, EOS or not."""
    decoding = await model.start(prompt)
    ids: list[int] = []
    for _ in range(count):
        ids.append(int(decoding.logits.argmax()))
        await decoding.feed(ids[-1:])
    return ids


def _torch_no_cache(prompt: list[int], concurrency: int, new_tokens: int) -> tuple[float, float]:
    """(tokens/s, time to first token) re-running the whole batch for every token."""
    from training.llm.sources import load_sources

    _, network, _ = load_sources()
    network.eval()
    rows = [list(prompt) for _ in range(concurrency)]
    started = time.perf_counter()
    first = 0.0
    with torch.no_grad():
        for step in range(new_tokens):
            tokens = torch.tensor(rows)
            positions = torch.arange(tokens.shape[1]).expand_as(tokens)
            mask = torch.ones_like(tokens)
            keys, values = network.empty_cache(len(rows))
            logits, _, _ = network(tokens, positions, mask, keys, values)
            for row, best in zip(rows, logits.argmax(-1).tolist(), strict=True):
                row.append(int(best))
            if step == 0:
                first = time.perf_counter() - started
    return concurrency * new_tokens / (time.perf_counter() - started), first


def _llama_cpp(prompt: list[int], gguf: pathlib.Path = GGUF) -> dict[str, object] | None:
    if not LLAMA_PYTHON.exists() or not gguf.exists():
        return None
    out = subprocess.run([str(LLAMA_PYTHON), "-m", "bench.llama_reference", str(gguf),
                          json.dumps(prompt), str(NEW_TOKENS), str(THREADS)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _exactness(greedy: dict[tuple[int, ...], list[int]]) -> Row:
    """Greedy tokens of ours vs llama.cpp on the same weights (the F32 GGUF)."""
    from bench.gguf_f32 import write_f32

    write_f32(GGUF, GGUF_F32)
    equal = total = 0
    for prompt, ours in greedy.items():
        reference = _llama_cpp(list(prompt), GGUF_F32)
        assert reference is not None
        theirs = [int(t) for t in reference["tokens"]]  # type: ignore[attr-defined]
        equal += next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b),
                      len(ours))
        total += len(ours)
    return Row("greedy tokens vs llama.cpp", f"{len(greedy)} prompts x {NEW_TOKENS}, same "
               "weights (F32 GGUF)", f"{equal} of {total} equal", "llama.cpp F32",
               f"{equal / total:.0%}", "equal prefix per prompt, summed")


def run() -> None:
    """Runs the text benchmarks and prints their table."""
    if not (MODEL / "model.json").exists():
        print("text bench skipped: run `make text-llm` first")
        return
    torch.set_num_threads(THREADS)
    spec = ModelSpec.load(MODEL)
    rows: list[Row] = []

    async def measure() -> tuple[list[int], dict[int, tuple[float, float]]]:
        backend = OnnxRuntimeBackend([], THREADS)
        await backend.load(spec)
        model = TextModel(spec, DecodeBatcher(backend, spec, max_batch=16))
        prompt = model.chat_prompt([Message("user", QUESTION)])
        results = {n: await _ours(model, n) for n in CONCURRENCY}
        for question in PARITY_QUESTIONS:
            ids = model.chat_prompt([Message("user", question)])
            greedy[tuple(ids)] = await _greedy_ids(model, ids, NEW_TOKENS)
        await model.batcher.close()
        await backend.close()
        return prompt, results

    greedy: dict[tuple[int, ...], list[int]] = {}
    prompt, ours = asyncio.run(measure())
    for n in CONCURRENCY:
        tokens_s, first_s = ours[n]
        # A full recompute per token is slow: 16 tokens are enough to measure it.
        ref_s, ref_first = _torch_no_cache(prompt, n, 16)
        rows.append(Row("tokens/s", f"{n} concurrent, {NEW_TOKENS} tokens", f"{tokens_s:.0f}",
                        f"{ref_s:.0f} (torch eager, no cache)", f"{tokens_s / ref_s:.1f}x",
                        f"first token {first_s * 1000:.0f} ms vs {ref_first * 1000:.0f} ms"))
    reference = _llama_cpp(prompt)
    if reference is None:
        rows.append(Row("tokens/s vs llama.cpp", "1 concurrent", "-", "not run", "-",
                        "run `make llama-env text-llm`"))
    else:
        theirs = float(str(reference["tokens_per_s"]))
        ours_one, first_one = ours[1]
        rows.append(Row("tokens/s vs llama.cpp", f"1 concurrent, {NEW_TOKENS} tokens",
                        f"{ours_one:.0f}", f"{theirs:.0f} (llama.cpp, Q4_1 as shipped)",
                        f"{ours_one / theirs:.2f}x",
                        f"first token {first_one * 1000:.0f} ms vs "
                        f"{float(str(reference['first_token_s'])) * 1000:.0f} ms"))
        rows.append(Row("tokens/s vs llama.cpp", "16 concurrent", f"{ours[16][0]:.0f}",
                        f"{theirs:.0f} (one sequence at a time)",
                        f"{ours[16][0] / theirs:.1f}x", "llama-cpp-python serves one "
                        "sequence per model instance"))
        rows.append(_exactness(greedy))
    print_table(f"Text generation, {spec.name} {spec.version} ({THREADS} threads each)", rows,
                "ONNX Runtime + cache (ours)", "reference")
