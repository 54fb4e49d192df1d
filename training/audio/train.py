"""Trains the DDSP synthesiser on the rendered chorale lines; keeps the best validation step.

    python -m training.audio.train            # when models/generate/cadenza-ddsp is absent
    python -m training.audio.train --force    # retrain from scratch (fixed seed)
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
import torch

from services.generate.audio.controls import HOP
from training.audio import dsp
from training.audio.data import Line, dataset
from training.audio.instruments import INSTRUMENTS
from training.audio.loss import spectral_loss
from training.audio.model import Decoder

logger = logging.getLogger(__name__)

SEED = 0
OUT_DIR = Path("models/generate/cadenza-ddsp")
CHECKPOINT = Path(".cache/audio-model/decoder.pt")
ACTIVE_DB = -70.0   # a window must be this loud in at least a quarter of its frames


@dataclass(frozen=True)
class Settings:
    """The training run's hyperparameters (chosen on the validation split)."""

    steps: int = 7000
    batch: int = 8
    window_frames: int = 250          # 2 s
    learning_rate: float = 1e-3
    final_learning_rate: float = 2e-4
    eval_every: int = 500
    eval_windows: int = 64
    threads: int = 2


def draw_windows(lines: list[Line], count: int, frames: int, rng: np.random.Generator
                 ) -> list[tuple[int, int]]:
    """(line, first frame) of `count` windows, lines drawn by length, quiet windows redrawn."""
    lengths = np.asarray([max(0, len(x.f0_hz) - frames) for x in lines], np.float64)
    chances = lengths / lengths.sum()
    out: list[tuple[int, int]] = []
    while len(out) < count:
        index = int(rng.choice(len(lines), p=chances))
        first = int(rng.integers(0, lengths[index] + 1))
        loud = lines[index].loudness_db[first:first + frames] > ACTIVE_DB
        if loud.mean() >= 0.25:
            out.append((index, first))
    return out


def batch_of(lines: list[Line], windows: list[tuple[int, int]], frames: int
             ) -> tuple[torch.Tensor, ...]:
    """f0, loudness, instrument index and target audio for the windows."""
    f0 = np.stack([lines[i].f0_hz[s:s + frames] for i, s in windows])
    loud = np.stack([lines[i].loudness_db[s:s + frames] for i, s in windows])
    audio = np.stack([lines[i].audio[s * HOP:(s + frames) * HOP] for i, s in windows])
    which = np.asarray([lines[i].instrument for i, _ in windows])
    return (torch.from_numpy(f0), torch.from_numpy(loud), torch.from_numpy(which),
            torch.from_numpy(audio))


def render(model: Decoder, f0: torch.Tensor, loud: torch.Tensor, which: torch.Tensor,
           generator: torch.Generator) -> torch.Tensor:
    """The model's audio for a batch of controls (noise drawn from `generator`)."""
    amplitudes, noise = model(f0, loud, model.instruments(which))
    white = torch.rand((f0.shape[0], f0.shape[1], HOP), generator=generator) * 2.0 - 1.0
    dry = dsp.harmonic(f0, amplitudes) + dsp.filtered_noise(noise, white)
    return dsp.reverb(dry, model.room())


def validation_loss(model: Decoder, lines: list[Line], windows: list[tuple[int, int]],
                    frames: int) -> float:
    """Mean spectral loss over fixed validation windows, with fixed noise."""
    model.eval()
    generator = torch.Generator().manual_seed(1)
    total = 0.0
    with torch.no_grad():
        for first in range(0, len(windows), 16):
            f0, loud, which, audio = batch_of(lines, windows[first:first + 16], frames)
            total += float(spectral_loss(render(model, f0, loud, which, generator), audio)
                           ) * len(windows[first:first + 16])
    model.train()
    return total / len(windows)


def train(settings: Settings, seed: int = SEED) -> tuple[Decoder, dict[str, object]]:
    """The decoder at its best validation step, and the run's history."""
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    data = dataset()
    train_lines, valid_lines = data["train"], data["validation"]
    valid_windows = draw_windows(valid_lines, settings.eval_windows, settings.window_frames,
                                 np.random.default_rng(seed + 1))
    model = Decoder(len(INSTRUMENTS))
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    decay = (settings.final_learning_rate / settings.learning_rate) ** (1.0 / settings.steps)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    history: list[dict[str, float]] = []
    best = (float("inf"), 0, copy.deepcopy(model.state_dict()))
    began = time.perf_counter()
    running = 0.0
    for step in range(1, settings.steps + 1):
        windows = draw_windows(train_lines, settings.batch, settings.window_frames, rng)
        f0, loud, which, audio = batch_of(train_lines, windows, settings.window_frames)
        loss = spectral_loss(render(model, f0, loud, which, generator), audio)
        optimiser.zero_grad()
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        optimiser.step()
        schedule.step()
        running += float(loss.detach())
        if step % settings.eval_every == 0 or step == settings.steps:
            valid = validation_loss(model, valid_lines, valid_windows, settings.window_frames)
            n = step % settings.eval_every or settings.eval_every
            history.append({"step": step, "train_loss": running / n, "valid_loss": valid,
                            "elapsed_s": time.perf_counter() - began})
            running = 0.0
            logger.info("step %d: train %.3f valid %.3f (%.0f s)", step,
                        history[-1]["train_loss"], valid, history[-1]["elapsed_s"])
            if valid < best[0]:
                best = (valid, step, copy.deepcopy(model.state_dict()))
            CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": best[2], "step": best[1], "history": history,
                        "best_valid_loss": best[0], "elapsed_s": time.perf_counter() - began,
                        "settings": settings.__dict__, "seed": seed,
                        "train_lines": len(train_lines), "validation_lines": len(valid_lines)},
                       CHECKPOINT)
    model.load_state_dict(best[2])
    model.eval()
    return model, {"history": history, "best_step": best[1], "best_valid_loss": best[0],
                   "training_time_s": time.perf_counter() - began, "seed": seed,
                   "settings": settings.__dict__,
                   "train_lines": len(train_lines), "validation_lines": len(valid_lines)}


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
    from training.audio.export import export_model, load_run  # onnx only when exporting

    model, run = load_run(CHECKPOINT) if args.export_only else train(Settings(steps=args.steps))

    export_model(model, run, args.out)
    logger.info("wrote %s: %s", args.out, json.dumps({k: run[k] for k in
                                                      ("best_step", "best_valid_loss")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
