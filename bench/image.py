"""Image speed on ONE core: the motif sampler on ONNX Runtime against torch eager, and covers.

- Motif: one guided DDIM sampling (the model's default steps, prompted and unprompted
  rows in one call per step) through the served sampler (services/generate/image/motif.py)
  with its network on ONNX Runtime (model.onnx, one intra-op thread), against the same
  sampler with the network as the torch module in eager mode (training/image/model.py,
  torch.set_num_threads(1), inference mode). The torch module gets random weights of the
  same architecture: the time of a forward pass does not depend on the weights' values,
  and the committed folder holds only the ONNX graph.
- At 1 and 8 requests in flight on that one core (asyncio, each network call in one
  worker thread, as the service runs them): seconds per motif and motifs per second.
- Cover: the composer (services/generate/image/cover.py) at 640 and 3000 pixels with a
  motif given, and a whole cover (motif + composing) at 1 and 8 in flight.

Figures on a machine with other work running are contended: compare the ratios.
"""

from __future__ import annotations

import asyncio
import functools
import pathlib
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from threadpoolctl import threadpool_limits

from bench.harness import Row, print_table
from services.generate.image.cover import compose
from services.generate.image.factors import MusicFeatures
from services.generate.image.motif import Denoise, sample, to_rgba
from services.generate.inference.backend import ModelSpec
from training.image.model import UNet, UNetConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "generate" / "cadenza-motif"
REPEATS = 3
FEATURES = MusicFeatures(key="D", mode="minor", chroma=tuple([0.2] * 12),
                         spectral_centroid_hz=1800.0, mfcc_mean=(), tempo_bpm=120.0,
                         onset_rate_hz=3.0, rms_db_mean=-18.0, dynamic_range_db=20.0)

WEIGHTS = {"palette": 1.0, "texture": 0.5, "pattern": 0.5, "contrast": 0.5, "motif": 1.0,
           "typography": 1.0}

Floats = npt.NDArray[np.float32]


def _onnx_denoise(session: ort.InferenceSession, pool: ThreadPoolExecutor) -> Denoise:
    async def denoise(x: Floats, t: Floats, text: Floats) -> Floats:
        out = await asyncio.get_running_loop().run_in_executor(
            pool, lambda: session.run(["eps"], {"x": x, "t": t, "text": text})[0])
        return np.asarray(out, np.float32)
    return denoise


def _torch_denoise(module: UNet, pool: ThreadPoolExecutor) -> Denoise:
    def forward(x: Floats, t: Floats, text: Floats) -> Floats:
        with torch.inference_mode():
            eps: Floats = module(torch.from_numpy(x), torch.from_numpy(t[:, 0]),
                                 torch.from_numpy(text)).numpy()
        return eps

    async def denoise(x: Floats, t: Floats, text: Floats) -> Floats:
        return await asyncio.get_running_loop().run_in_executor(pool, forward, x, t, text)
    return denoise


async def _in_flight(work: Callable[[int], Awaitable[object]], count: int) -> float:
    """Seconds for `count` calls of work started together (median of REPEATS)."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await asyncio.gather(*(work(i) for i in range(count)))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _median_s(work: Callable[[], object]) -> float:
    work()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _measure(spec: ModelSpec) -> list[Row]:
    image = spec.picture
    shape = (image.channels, image.size, image.size)
    steps, guidance = image.default_steps, image.default_guidance
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(spec.onnx_path), options,
                                   providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    module = UNet(UNetConfig(channels=image.channels, size=image.size,
                             text_size=image.text_size)).eval()
    pool = ThreadPoolExecutor(max_workers=1)   # one core: one network call at a time
    text = np.random.default_rng(0).standard_normal((1, image.text_size)).astype(np.float32)
    text /= np.linalg.norm(text)
    denoisers = {"ort": _onnx_denoise(session, pool), "torch": _torch_denoise(module, pool)}

    def motif(kind: str) -> Callable[[int], Awaitable[object]]:
        return lambda i: sample(denoisers[kind], text, shape, steps=steps, guidance=guidance,
                                seed=i)

    rows: list[Row] = []
    for count in (1, 8):
        ours = await _in_flight(motif("ort"), count)
        theirs = await _in_flight(motif("torch"), count)
        rows.append(Row("motif", f"{count} in flight, {steps} steps, g={guidance:g}",
                        f"{ours / count:.2f} s/motif", f"{theirs / count:.2f} s/motif "
                        "(torch eager)", f"{theirs / ours:.2f}x",
                        f"{count / ours:.2f} motifs/s (ORT)"))
    rgba = to_rgba(await sample(denoisers["ort"], text, shape, steps=steps,
                                guidance=guidance, seed=0))[0]
    for size in (640, 3000):
        seconds = _median_s(functools.partial(compose, FEATURES, WEIGHTS, 1, size, rgba,
                                              "Night Drive", "The Testers", "png"))
        rows.append(Row("compose", f"{size}x{size} PNG, motif and title", f"{seconds:.2f} s",
                        "-", "-", "numpy + Pillow"))
    compose_pool = ThreadPoolExecutor(max_workers=1)

    async def cover(i: int) -> object:
        drawn = to_rgba(await sample(denoisers["ort"], text, shape, steps=steps,
                                     guidance=guidance, seed=i))[0]
        return await asyncio.get_running_loop().run_in_executor(
            compose_pool, lambda: compose(FEATURES, WEIGHTS, i, 640, drawn,
                                          "Night Drive", "", "png"))

    for count in (1, 8):
        seconds = await _in_flight(cover, count)
        rows.append(Row("cover", f"640 px, {count} in flight", f"{seconds / count:.2f} s/cover",
                        "-", "-", f"{count / seconds:.2f} covers/s"))
    pool.shutdown()
    compose_pool.shutdown()
    return rows


def run() -> None:
    """Runs the image benchmarks on one core and prints their table."""
    if not (MODEL / "model.onnx").is_file():
        print("image bench skipped: models/generate/cadenza-motif is missing (make image-model)")
        return
    spec = ModelSpec.load(MODEL)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            rows = asyncio.run(_measure(spec))
    finally:
        torch.set_num_threads(threads)
    print_table(f"Images, {spec.name} {spec.version} (1 core; ratio = torch time / ours)",
                rows, "ours (ONNX Runtime)", "reference")
