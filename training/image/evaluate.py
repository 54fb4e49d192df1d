"""Eval of the diffusion model cadenza-motif: sample quality and prompt faithfulness.

`python -m training.image.evaluate [--model-dir DIR] [--out DIR] [--write-card]`

Protocol. The feature space is a small CNN trained on the TRAIN split's images to name
their subcategory (training/image/classifier.py, epoch chosen on validation, cached in
.cache/image-eval); Inception weights, which standard FID reads, cannot be fetched here.
Samples come from onnxruntime on DIR/model.onnx (one thread), DDIM with
classifier-free guidance (services/generate/image/motif.py), sample i drawn for
caption i from seed 0, so every run draws the same noise.

1. VALIDATION split, to choose the sampling defaults: guidance in GUIDANCES at
   SWEEP_STEPS DDIM steps, then steps in STEP_CHOICES at the best guidance, each scored
   by the Frechet distance (training/image/fid.py) between the samples for the 172
   validation captions and the 172 real validation images.
2. TEST split, once, with those settings: FD(samples for the test captions, real test);
   the real-vs-real floor: validation vs test real images (the same sample size as the
   model's figure) and the two halves of test (half the size, so a larger bias);
   baselines: real test images under a Gaussian blur, and samples after only
   BASELINE_STEPS DDIM steps (chosen guidance). Prompt faithfulness: the classifier's
   top-5 (subcategory of the held-out test caption) on the samples, beside its top-5 on
   the real test images (ceiling), on unconditional samples (guidance 0, chosen steps:
   what it says without the prompt) and chance (5 / classes).

Writes OUT/eval_image.json and OUT/test_samples.png (sample left, real right, for 64
test captions, printed with their grid positions). --write-card puts the chosen
defaults in DIR/model.json as "sampling" and the test figures in card.metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from PIL import Image, ImageFilter

from cadenza.kit.text_encoder import TextEncoder
from services.generate.image.motif import sample, to_rgba
from training.image import classifier
from training.image.data import ImageSet, image_sets
from training.image.fid import frechet_distance

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "generate" / "cadenza-motif"
DEFAULT_OUT = ROOT / ".cache" / "image-eval"
TEXT_MODEL = ROOT / "models" / "text"
GUIDANCES = (1.0, 2.0, 3.0, 5.0)
SWEEP_STEPS = 25
STEP_CHOICES = (10, 25, 50)
BASELINE_STEPS = 2
BLUR_RADIUS_PX = 2
SEED = 0
THREADS = 2          # the host's two cores; nothing else should run beside the eval
ROWS_PER_CALL = 64    # network rows per onnxruntime call; the per-image cost is flat above 16
GRID_SIDE = 8
UPSCALE = 3
Floats = npt.NDArray[np.float32]


class OnnxDenoiser:
    """The exported network as motif.sample's `denoise`, in calls of ROWS_PER_CALL rows."""

    def __init__(self, model_dir: Path) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.rows = 0

    async def __call__(self, x: Floats, t: Floats, text: Floats) -> Floats:
        """eps for every row of x, however many."""
        out = []
        for start in range(0, x.shape[0], ROWS_PER_CALL):
            part = slice(start, start + ROWS_PER_CALL)
            (eps,) = self.session.run(["eps"], {"x": x[part], "t": t[part],
                                                "text": text[part]})
            out.append(eps)
        self.rows += x.shape[0]
        return np.concatenate(out).astype(np.float32)


class Judge:
    """Scores images in the classifier's terms: features, Frechet distance, top-5."""

    def __init__(self, trained: classifier.Trained) -> None:
        self.trained = trained

    def distance(self, images: Floats, reference: Floats) -> float:
        """Frechet distance between two image sets' classifier features."""
        return round(frechet_distance(self.trained.features(images),
                                      self.trained.features(reference)), 3)

    def top5(self, images: Floats, labels: npt.NDArray[np.int64]) -> float:
        """Share of images whose label is among the classifier's five best guesses."""
        return round(classifier.top_k(self.trained.logits(images), labels, 5), 4)


def generate(denoiser: OnnxDenoiser, text: Floats, guidance: float, steps: int) -> Floats:
    """Samples [N, 4, 32, 32] for the text embeddings; logs how long they took."""
    began = time.perf_counter()
    images = asyncio.run(sample(denoiser, text, (4, 32, 32), steps=steps, guidance=guidance,
                                seed=SEED))
    logger.info("%d samples, guidance %g, %d steps: %.0f s", len(text), guidance, steps,
                time.perf_counter() - began)
    return images


def blurred(images: Floats, radius_px: float = BLUR_RADIUS_PX) -> Floats:
    """Each channel of the premultiplied images under a Gaussian blur (as 8-bit pictures).

    Channel by channel: Pillow's RGBA blur would treat the premultiplied colour as straight.
    """
    out = np.empty_like(images)
    for i, image in enumerate(images):
        for c, channel in enumerate(image):
            grey = Image.fromarray(np.round((channel + 1.0) * 127.5).astype(np.uint8), "L")
            soft = grey.filter(ImageFilter.GaussianBlur(radius_px))
            out[i, c] = np.asarray(soft, np.float32) / 127.5 - 1.0
    return out


def subset(images: ImageSet, limit: int | None) -> ImageSet:
    """`limit` images spread evenly over the split (all when None): for smoke runs only."""
    if limit is None or limit >= len(images.emoji):
        return images
    keep = np.unique(np.linspace(0, len(images.emoji) - 1, limit).round().astype(int))
    return ImageSet(images.images[keep], [images.emoji[i] for i in keep])


def choose_sampling(denoiser: OnnxDenoiser, judge: Judge, text: Floats, real: Floats
                    ) -> tuple[float, int, dict[str, Any]]:
    """Guidance, then steps, each with the lowest validation FD; and every score."""
    by_guidance = {g: judge.distance(generate(denoiser, text, g, SWEEP_STEPS), real)
                   for g in GUIDANCES}
    guidance = min(GUIDANCES, key=lambda g: by_guidance[g])
    by_steps = {s: (by_guidance[guidance] if s == SWEEP_STEPS
                    else judge.distance(generate(denoiser, text, guidance, s), real))
                for s in STEP_CHOICES}
    steps = min(STEP_CHOICES, key=lambda s: by_steps[s])
    sweep = {f"fd_guidance_{g:g}_steps_{SWEEP_STEPS}": v for g, v in by_guidance.items()}
    sweep.update({f"fd_guidance_{guidance:g}_steps_{s}": v for s, v in by_steps.items()})
    return guidance, steps, sweep


def test_figures(denoiser: OnnxDenoiser, judge: Judge, sets: dict[str, ImageSet],
                 text: Floats, guidance: float, steps: int) -> tuple[dict[str, float], Floats]:
    """Every test figure, and the test-caption samples (for the grid)."""
    real, other = sets["test"].images, sets["validation"].images
    labels = judge.trained.labels(sets["test"])
    ours = generate(denoiser, text, guidance, steps)
    few_steps = generate(denoiser, text, guidance, BASELINE_STEPS)
    unconditional = generate(denoiser, text, 0.0, steps)
    figures = {
        "test_fd": judge.distance(ours, real),
        "test_fd_real_floor": judge.distance(other, real),
        "test_fd_real_halves": judge.distance(real[0::2], real[1::2]),
        "test_fd_blur_baseline": judge.distance(blurred(real), real),
        "test_fd_2step_baseline": judge.distance(few_steps, real),
        "test_fd_unconditional": judge.distance(unconditional, real),
        "test_top5_prompt": judge.top5(ours, labels),
        "test_top5_real": judge.top5(real, labels),
        "test_top5_unconditional": judge.top5(unconditional, labels),
        "test_top5_2step": judge.top5(few_steps, labels),
        "test_top5_chance": round(5 / len(judge.trained.classes), 4),
    }
    return figures, ours


def sample_grid(samples: Floats, real: ImageSet) -> tuple[Image.Image, list[str]]:
    """GRID_SIDE x GRID_SIDE pairs (sample left, real right, upscaled) and their captions."""
    count = min(GRID_SIDE * GRID_SIDE, len(real.emoji))
    picks = np.unique(np.linspace(0, len(real.emoji) - 1, count).round().astype(int))
    tile, gap = 32 * UPSCALE, 4
    pair_w = 2 * tile + gap
    columns = min(GRID_SIDE, len(picks))
    rows = -(-len(picks) // columns)
    canvas = Image.new("RGB", (columns * (pair_w + 16) + 16, rows * (tile + 16) + 16),
                       (255, 255, 255))
    ours, theirs = to_rgba(samples[picks]), to_rgba(real.images[picks])
    captions = []
    for n, index in enumerate(picks):
        row, column = divmod(n, columns)
        x, y = 16 + column * (pair_w + 16), 16 + row * (tile + 16)
        for offset, rgba in ((0, ours[n]), (tile + gap, theirs[n])):
            # Light grey behind each picture, so white and transparent parts differ.
            cell = Image.new("RGBA", (tile, tile), (214, 214, 214, 255))
            picture = Image.fromarray(rgba, "RGBA").resize((tile, tile),
                                                           Image.Resampling.NEAREST)
            canvas.paste(Image.alpha_composite(cell, picture).convert("RGB"), (x + offset, y))
        captions.append(f"({row + 1},{column + 1}) {real.emoji[index].caption}")
    return canvas, captions


def write_card(model_dir: Path, guidance: float, steps: int, figures: dict[str, float]
               ) -> None:
    """The chosen defaults and the test figures into model.json; the rest kept as it is."""
    path = model_dir / "model.json"
    data = json.loads(path.read_text())
    data["sampling"] = {"guidance": guidance, "steps": steps}
    data.setdefault("card", {}).setdefault("metrics", {}).update(figures)
    path.write_text(json.dumps(data, indent=1) + "\n")


def run(model_dir: Path, out: Path, limit: int | None) -> dict[str, Any]:
    """The whole eval; returns the report written to eval_image.json."""
    began = time.perf_counter()
    full = image_sets()
    sets = {"train": full["train"], "validation": subset(full["validation"], limit),
            "test": subset(full["test"], limit)}
    trained = classifier.load_or_train(full, cache_dir=DEFAULT_OUT)
    judge = Judge(trained)
    encoder = TextEncoder.load(TEXT_MODEL, ["CPUExecutionProvider"], intra_op_threads=1)
    text = {k: encoder.encode([e.caption for e in sets[k].emoji]).astype(np.float32)
            for k in ("validation", "test")}
    denoiser = OnnxDenoiser(model_dir)
    classified_s = time.perf_counter() - began
    guidance, steps, sweep = choose_sampling(denoiser, judge, text["validation"],
                                             sets["validation"].images)
    chosen_s = time.perf_counter() - began
    figures, samples = test_figures(denoiser, judge, sets, text["test"], guidance, steps)
    out.mkdir(parents=True, exist_ok=True)
    grid, captions = sample_grid(samples, sets["test"])
    grid.save(out / "test_samples.png")
    card = json.loads((model_dir / "model.json").read_text()).get("card", {})
    return {
        "model_dir": str(model_dir), "model_best_step": card.get("best_step"),
        "sampling": {"guidance": guidance, "steps": steps, "chosen_on": "validation"},
        "validation_sweep": sweep, "test": figures,
        "classifier": {k: v for k, v in trained.report.items() if k != "history"},
        "sizes": {k: len(sets[k].emoji) for k in ("validation", "test")},
        "classes": len(trained.classes), "limit": limit, "grid_captions": captions,
        "network_rows": denoiser.rows,
        "timings_s": {"setup_s": round(classified_s, 1),
                      "validation_sweep_s": round(chosen_s - classified_s, 1),
                      "test_s": round(time.perf_counter() - began - chosen_s, 1),
                      "total_s": round(time.perf_counter() - began, 1)},
    }


def _table(report: dict[str, Any]) -> str:
    c, t, s = report["classifier"], report["test"], report["sampling"]
    n = report["sizes"]["test"]
    lines = [
        f"Classifier ({c['parameters']:,} params, {report['classes']} subcategories, epoch "
        f"{c['epoch']} chosen on validation), real images: validation top-1 "
        f"{c['validation_top1']:.1%} top-5 {c['validation_top5']:.1%}; test top-1 "
        f"{c['test_top1']:.1%} top-5 {c['test_top5']:.1%}",
        "",
        f"Validation sweep (FD, {report['sizes']['validation']} samples vs real validation):",
        *(f"  {k:<32} {v:8.3f}" for k, v in report["validation_sweep"].items()),
        f"Chosen on VALIDATION: guidance {s['guidance']:g}, {s['steps']} steps.",
        "",
        f"Test split, once (FD in classifier features; lower is better; n = {n}):",
        f"  {'ours vs real test':<44} {t['test_fd']:8.3f}",
        f"  {'floor: real validation vs real test':<44} {t['test_fd_real_floor']:8.3f}",
        f"  {'floor: test half vs half (n/2, more bias)':<44} {t['test_fd_real_halves']:8.3f}",
        f"  {f'baseline: real test blurred (r={BLUR_RADIUS_PX} px)':<44} "
        f"{t['test_fd_blur_baseline']:8.3f}",
        f"  {f'baseline: {BASELINE_STEPS} DDIM steps':<44} {t['test_fd_2step_baseline']:8.3f}",
        f"  {'unconditional samples (guidance 0)':<44} {t['test_fd_unconditional']:8.3f}",
        "",
        "Prompt faithfulness: classifier top-5 on the subcategory of the held-out test caption:",
        f"  {'ours (samples for the test captions)':<44} {t['test_top5_prompt']:8.1%}",
        f"  {'ceiling: the real test images':<44} {t['test_top5_real']:8.1%}",
        f"  {'unconditional samples (no prompt)':<44} {t['test_top5_unconditional']:8.1%}",
        f"  {f'{BASELINE_STEPS} DDIM steps':<44} {t['test_top5_2step']:8.1%}",
        f"  {'chance (5 / classes)':<44} {t['test_top5_chance']:8.1%}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the eval, prints its table, writes eval_image.json and the sample grid."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--write-card", action="store_true",
                        help="write the chosen sampling and the test figures into model.json")
    parser.add_argument("--limit", type=int, default=None,
                        help="images per split, for a smoke run (figures not comparable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not (args.model_dir / "model.onnx").is_file():
        parser.error(f"{args.model_dir} has no model.onnx: `python -m training.image.train` "
                     "trains one")
    if args.write_card and args.limit is not None:
        parser.error("--write-card needs the full splits (no --limit)")
    torch.set_num_threads(THREADS)
    report = run(args.model_dir.resolve(), args.out, args.limit)
    print(f"\nModel {report['model_dir']} (best training step {report['model_best_step']}).")
    print(_table(report))
    print(f"\nGrid {args.out / 'test_samples.png'}: sample left, real right, (row,col):")
    print("\n".join(f"  {c}" for c in report["grid_captions"]))
    (args.out / "eval_image.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.write_card:
        write_card(args.model_dir, report["sampling"]["guidance"], report["sampling"]["steps"],
                   report["test"])
        print(f"wrote sampling and card.metrics into {args.model_dir / 'model.json'}")
    print(f"wrote {args.out / 'eval_image.json'}; {report['timings_s']['total_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
