"""Trains the motif denoiser (DDPM, eps prediction) on the emoji set; keeps the best EMA step.

    python -m training.image.train            # when models/generate/cadenza-motif is absent
    python -m training.image.train --force    # retrain from scratch (fixed seed)

Captions are embedded once with the MiniLM ONNX encoder the service uses (models/text),
so training and serving condition on the same numbers. One caption in ten is replaced
by the zero "no text" vector, which classifier-free guidance needs at sampling time.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from cadenza.kit.text_encoder import TextEncoder
from services.generate.image.schedule import TRAIN_STEPS, alpha_bar
from training.image.data import ImageSet, image_sets
from training.image.model import UNet, UNetConfig

logger = logging.getLogger(__name__)

SEED = 0
OUT_DIR = Path("models/generate/cadenza-motif")
CHECKPOINT = Path(".cache/image-model/denoiser.pt")
TEXT_MODEL = Path("models/text")


@dataclass(frozen=True)
class Settings:
    """The training run's hyperparameters.

    The learning rate follows a cosine over `steps`; the run stops after `stop_at` steps
    (the committed model's time budget on 2 cores), keeping the best validation step.
    """

    steps: int = 2400
    stop_at: int = 1200
    batch: int = 48
    learning_rate: float = 4e-4
    warmup_steps: int = 100
    ema_decay: float = 0.995
    text_dropout: float = 0.1
    max_shift_px: int = 2
    eval_every: int = 300
    threads: int = 2


def embed(encoder: TextEncoder, sets: dict[str, ImageSet]) -> dict[str, npt.NDArray[np.float32]]:
    """Each split's caption embeddings, [N, 384]."""
    return {k: encoder.encode([e.caption for e in s.emoji]).astype(np.float32)
            for k, s in sets.items()}


def noised(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, bars: torch.Tensor
           ) -> torch.Tensor:
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise."""
    a = bars[t][:, None, None, None]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def shifted(x: torch.Tensor, max_px: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to max_px pixels (emoji sit inside a transparent margin)."""
    out = torch.empty_like(x)
    moves = torch.randint(-max_px, max_px + 1, (x.shape[0], 2), generator=generator)
    for i, (dy, dx) in enumerate(moves.tolist()):
        out[i] = torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))
    return out


def validation_loss(model: UNet, images: torch.Tensor, text: torch.Tensor,
                    bars: torch.Tensor) -> float:
    """Mean noise-prediction error on the validation images at 8 fixed timesteps, fixed noise."""
    generator = torch.Generator().manual_seed(1)
    total = 0.0
    grid = torch.linspace(20, TRAIN_STEPS - 20, 8).long()
    model.eval()
    with torch.no_grad():
        for t_value in grid:
            noise = torch.randn(images.shape, generator=generator)
            t = torch.full((images.shape[0],), int(t_value))
            total += float((model(noised(images, t, noise, bars), t.float(), text) - noise
                            ).pow(2).mean())
    model.train()
    return total / len(grid)


def train(settings: Settings, seed: int = SEED) -> tuple[UNet, dict[str, object]]:
    """The EMA denoiser at its best validation step, and the run's history."""
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    generator = torch.Generator().manual_seed(seed)
    sets = image_sets()
    text = embed(TextEncoder.load(TEXT_MODEL, intra_op_threads=settings.threads), sets)
    images = torch.from_numpy(sets["train"].images)
    captions = torch.from_numpy(text["train"])
    valid_images = torch.from_numpy(sets["validation"].images)
    valid_text = torch.from_numpy(text["validation"])
    bars = torch.from_numpy(alpha_bar()).float()
    model = UNet(UNetConfig())
    ema = copy.deepcopy(model).eval()
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(
        1.0, (s + 1) / settings.warmup_steps) * 0.5 * (1 + np.cos(np.pi * s / settings.steps)))
    history: list[dict[str, float]] = []
    best = (float("inf"), 0, copy.deepcopy(ema.state_dict()))
    began = time.perf_counter()
    running = 0.0
    last = min(settings.stop_at, settings.steps)
    for step in range(1, last + 1):
        pick = torch.randint(0, images.shape[0], (settings.batch,), generator=generator)
        x0 = shifted(images[pick], settings.max_shift_px, generator)
        cond = captions[pick].clone()
        drop = torch.rand(settings.batch, generator=generator) < settings.text_dropout
        cond[drop] = 0.0
        t = torch.randint(0, TRAIN_STEPS, (settings.batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = (model(noised(x0, t, noise, bars), t.float(), cond) - noise).pow(2).mean()
        optimiser.zero_grad()
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p, 1.0 - settings.ema_decay)
        running += float(loss.detach())
        if step % settings.eval_every == 0 or step == last:
            valid = validation_loss(ema, valid_images, valid_text, bars)
            n = step % settings.eval_every or settings.eval_every
            history.append({"step": step, "train_loss": running / n, "valid_loss": valid,
                            "elapsed_s": time.perf_counter() - began})
            running = 0.0
            logger.info("step %d: train %.4f valid (EMA) %.4f (%.0f s)", step,
                        history[-1]["train_loss"], valid, history[-1]["elapsed_s"])
            if valid < best[0]:
                best = (valid, step, copy.deepcopy(ema.state_dict()))
            CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": best[2], "step": best[1], "history": history,
                        "best_valid_loss": best[0], "elapsed_s": time.perf_counter() - began,
                        "settings": settings.__dict__, "seed": seed,
                        "splits": {k: len(s.emoji) for k, s in sets.items()}}, CHECKPOINT)
    ema.load_state_dict(best[2])
    return ema, {"history": history, "best_step": best[1], "best_valid_loss": best[0],
                 "training_time_s": time.perf_counter() - began, "seed": seed,
                 "settings": settings.__dict__,
                 "splits": {k: len(s.emoji) for k, s in sets.items()}}


def main(argv: list[str] | None = None) -> int:
    """Trains and exports unless the model folder exists (or --force)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--export-only", action="store_true",
                        help=f"export the best step saved in {CHECKPOINT} without training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if (args.out / "model.onnx").is_file() and not args.force:
        logger.info("%s exists; --force retrains", args.out)
        return 0
    from training.image.export import export_model, load_run  # onnx only when exporting

    model, run = load_run(CHECKPOINT) if args.export_only else train(Settings(steps=args.steps))
    export_model(model, run, args.out)
    logger.info("wrote %s: %s", args.out, json.dumps({k: run[k] for k in
                                                      ("best_step", "best_valid_loss")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
