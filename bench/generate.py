"""Generation speed: the served path (ONNX Runtime, key/value cache, shared decode calls)
against torch eager without a cache, on the same trained model, in one run.

- Tokens per second, ours: DecodeBatcher over ONNX Runtime, N concurrent generations;
  reference: the same weights in torch eager, the N sequences in one batch, re-running
  the whole sequence for every new token (what a model without a cache costs).
- Seconds of music per second of compute and time to first event: the whole Composer
  (grammar, forced bars, MIDI, originality), from scratch, 8 bars of 4/4 at 100 bpm.
- Triton vs ONNX Runtime rows come from bench/generate_triton.py; the JSB row from the
  committed benchmark checkpoint (training/music/jsb.py).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import statistics
import time
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from bench import generate_triton
from bench.harness import Row, print_table
from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.inference.sampling import Sampling, sample
from services.generate.music.composer import Composer, Piece
from services.generate.music.composition import Composition, Mode
from services.generate.registry import ModelRegistry
from services.generate.slots import Slots

if TYPE_CHECKING:
    from training.music.model import Transformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "generate"
MODEL = MODELS / "cadenza-poly"
NEW_TOKENS = 128
CONCURRENCY = (1, 16)
THREADS = 2


def _allowed(spec: ModelSpec, last: int) -> npt.NDArray[np.bool_]:
    vocab = spec.music
    allowed = vocab.allowed(vocab.ceilings(np.array(last)))
    allowed[[vocab.BAR, vocab.EOS]] = False
    return allowed


def _preamble(spec: ModelSpec) -> list[int]:
    v = spec.music
    return [v.BOS, v.style("chorale"), v.key(0, False), v.time_signature("4/4"), v.BAR]


async def _ours(spec: ModelSpec, backend: OnnxRuntimeBackend, concurrency: int) -> float:
    batcher = DecodeBatcher(backend, spec, max_batch=concurrency, max_wait_s=0.002)

    async def one(seed: int) -> None:
        rng = np.random.default_rng(seed)
        tokens = _preamble(spec)
        with batcher.session():
            logits, cache = await batcher.step(tokens, 0, batcher.empty_cache())
            for _ in range(NEW_TOKENS):
                token = sample(logits, _allowed(spec, tokens[-1]), Sampling(), rng)
                logits, cache = await batcher.step([token], len(tokens), cache)
                tokens.append(token)

    started = time.perf_counter()
    await asyncio.gather(*(one(seed) for seed in range(concurrency)))
    elapsed = time.perf_counter() - started
    await batcher.close()
    return concurrency * NEW_TOKENS / elapsed


def _reference(model: Transformer, spec: ModelSpec, concurrency: int) -> float:
    rngs = [np.random.default_rng(seed) for seed in range(concurrency)]
    rows = [_preamble(spec) for _ in range(concurrency)]
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(NEW_TOKENS):
            logits = model.forward_train(torch.tensor(rows))[:, -1].numpy()
            for row, rng, row_logits in zip(rows, rngs, logits, strict=True):
                row.append(sample(row_logits, _allowed(spec, row[-1]), Sampling(), rng))
    return concurrency * NEW_TOKENS / (time.perf_counter() - started)


async def _composer_rows(concurrency: int) -> Row:
    backend = OnnxRuntimeBackend([], THREADS)
    registry = ModelRegistry(backend, MODELS, "cadenza-poly", max_batch=16, max_wait_s=0.002)
    await registry.load_all()
    composer = Composer(registry, Slots(concurrency))
    first_events: list[float] = []

    async def one(seed: int) -> float:
        started = time.perf_counter()
        first: float | None = None
        seconds = 0.0
        async for item in composer.compose(Composition(
                model="cadenza-poly", mode=Mode.SCRATCH, bars=8, tempo_bpm=100, seed=seed)):
            if first is None:
                first = time.perf_counter() - started
            if isinstance(item, Piece):
                seconds = item.duration_s
        first_events.append(first or 0.0)
        return seconds

    started = time.perf_counter()
    music = await asyncio.gather(*(one(seed) for seed in range(concurrency)))
    elapsed = time.perf_counter() - started
    await registry.close()
    return Row("music per compute second", f"{concurrency} concurrent, 8 bars",
               f"{sum(music) / elapsed:.1f} s/s", "1.0 s/s (real time)",
               f"{sum(music) / elapsed:.1f}x",
               f"first event p50 {statistics.median(first_events) * 1000:.0f} ms")


def _torch_model(spec: ModelSpec) -> Transformer:
    """The served graph's weights in the torch module, checked to give the same logits.

    The committed folder holds only the ONNX file; the legacy exporter keeps parameter
    names except for MatMul weights, which it stores transposed under its node's name.
    """
    import onnx
    from onnx import numpy_helper

    from training.music.export import compare, example_inputs
    from training.music.model import ModelConfig, Transformer

    graph = onnx.load(spec.onnx_path).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = {name: torch.from_numpy(array.copy()) for name, array in weights.items()
             if not name.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or not node.input[1].startswith("onnx::"):
            continue
        match = re.fullmatch(r"(.*?)(?:_(\d+))?", node.name.strip("/").split("/")[0])
        assert match is not None  # the pattern matches every string
        module, layer = match.groups()
        if module == "head":
            continue  # tied to the token embedding
        state[f"blocks.{layer or 0}.{module}.weight"] = torch.from_numpy(
            weights[node.input[1]].T.copy())
    state["head.weight"] = state["token_embedding.weight"]
    model = Transformer(ModelConfig(vocab_size=spec.vocab_size, d_model=spec.n_heads *
                                    spec.head_dim, n_layers=spec.n_layers,
                                    n_heads=spec.n_heads, max_positions=spec.max_positions,
                                    dropout=0.0))
    model.load_state_dict(state)
    model.eval()
    difference = compare(model, spec.onnx_path, example_inputs(model, 2, 5, 3))
    if difference > 1e-3:
        raise RuntimeError(f"torch copy of {spec.name} differs from its graph by {difference}")
    return model


def _jsb_rows() -> list[Row]:
    """The committed benchmark checkpoint's figures (`make eval-jsb` recomputes them)."""
    from training.music.jsb import DEFAULT_CHECKPOINT, PUBLISHED
    path = DEFAULT_CHECKPOINT / "results.json"
    if not path.exists():
        return [Row("JSB test NLL", "-", "not measured", "-", "-", "run `make train-jsb`")]
    test = float(json.loads(path.read_text())["test_nll"])
    published = dict(PUBLISHED)
    nade = published["RNN-NADE, Boulanger-Lewandowski 2012"]
    tcn = published["TCN, Bai et al. 2018"]
    return [Row("JSB Chorales test NLL, nats/frame", "B-L 2012 split, exact",
                f"{test:.3f}", f"RNN-NADE {nade}, TCN {tcn}", f"{test / nade:.2f}x NADE",
                "full table: make eval-jsb")]


def run() -> None:
    """Runs the generate benchmarks and prints their tables."""
    torch.set_num_threads(THREADS)
    spec = ModelSpec.load(MODEL)
    model = _torch_model(spec)
    rows = []

    async def tokens_rows() -> None:
        backend = OnnxRuntimeBackend([], THREADS)
        await backend.load(spec)
        for concurrency in CONCURRENCY:
            ours = await _ours(spec, backend, concurrency)
            reference = _reference(model, spec, concurrency)
            rows.append(Row("tokens/s", f"{concurrency} concurrent, {NEW_TOKENS} tokens",
                            f"{ours:.0f}", f"{reference:.0f}", f"{ours / reference:.1f}x"))
        await backend.close()
        for concurrency in CONCURRENCY:
            rows.append(await _composer_rows(concurrency))

    asyncio.run(tokens_rows())
    rows.extend(_jsb_rows())
    print_table(f"Generation, {spec.name} {spec.version} ({THREADS} threads each)", rows,
                "ONNX Runtime + cache (ours)", "torch eager, no cache")
    generate_triton.run()
