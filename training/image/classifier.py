"""A small CNN that names an emoji's subcategory: the feature space of the image eval.

Standard FID reads Inception-v3 features, whose weights cannot be fetched here, so the
eval (training/image/evaluate.py) measures Frechet distances in the penultimate
layer of this classifier instead: FEATURES numbers per image that had to separate ~95
subcategories of the TRAIN split, read before their ReLU (after it, a few units are 0
on every image, which makes the covariances singular and adds nothing). Its top-5 on
generated samples is the eval's prompt faithfulness. The numbers are only comparable
between runs that use the same weights, which is why they are cached under a hash of
the settings and the data version.

Trained on the train split with random +-2 px shifts (emoji sit inside a transparent
margin, and samples need not be centred to the pixel), seed fixed; the epoch kept is
the one with the best VALIDATION top-1 (ties: the earlier), so test stays unseen.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from training.image.data import SIZE, VERSION, ImageSet

logger = logging.getLogger(__name__)

CACHE_DIR = Path(".cache/image-eval")
FEATURES = 64
SEED = 0
LAYOUT = 2   # the module's parameter names; a change makes older caches retrain


@dataclass(frozen=True)
class Settings:
    """The classifier's shape and training run; any change retrains (new cache key)."""

    widths: tuple[int, int, int] = (32, 64, 128)
    features: int = FEATURES
    epochs: int = 45
    batch: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    dropout: float = 0.3
    max_shift_px: int = 2
    seed: int = SEED


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class Classifier(nn.Module):
    """[B, 4, 32, 32] premultiplied RGBA in [-1, 1] -> subcategory logits [B, classes].

    Five 3x3 convolutions (32 -> 16 -> 8 -> 4 px), global average pooling, then a
    `features`-wide linear layer (the eval's feature space), ReLU and the classifier.
    """

    def __init__(self, classes: int, settings: Settings = Settings()) -> None:
        super().__init__()
        a, b, c = settings.widths
        self.body = nn.Sequential(*_conv(4, a), *_conv(a, a), nn.MaxPool2d(2),
                                  *_conv(a, b), *_conv(b, b), nn.MaxPool2d(2),
                                  *_conv(b, c), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.embed = nn.Linear(c, settings.features)
        self.dropout = nn.Dropout(settings.dropout)
        self.head = nn.Linear(settings.features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer before its ReLU, [B, settings.features]."""
        return cast(torch.Tensor, self.embed(self.body(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subcategory logits."""
        return cast(torch.Tensor, self.head(self.dropout(F.relu(self.features(x)))))


@dataclass
class Trained:
    """The classifier at its chosen epoch, its class names and its accuracy on real images."""

    model: Classifier
    classes: list[str]
    report: dict[str, Any]

    def labels(self, images: ImageSet) -> npt.NDArray[np.int64]:
        """Each image's subcategory as a class index."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[e.subcategory] for e in images.emoji], np.int64)

    def features(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Penultimate features [N, FEATURES] of images [N, 4, 32, 32]."""
        return _batched(self.model.features, images)

    def logits(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Class scores [N, classes]."""
        return _batched(self.model, images)


def _batched(fn: Any, images: npt.NDArray[np.float32], batch: int = 256
             ) -> npt.NDArray[np.float64]:
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(fn(torch.from_numpy(images[start:start + batch])).double().numpy())
    return np.concatenate(out)


def top_k(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], k: int) -> float:
    """Share of rows whose label is among their k highest scores."""
    best = np.argsort(-logits, axis=1)[:, :k]
    return float((best == labels[:, None]).any(axis=1).mean())


def shifted(x: torch.Tensor, max_px: int, generator: torch.Generator) -> torch.Tensor:
    """Each image rolled by up to max_px pixels each way (the margin is transparent)."""
    out = torch.empty_like(x)
    moves = torch.randint(-max_px, max_px + 1, (x.shape[0], 2), generator=generator)
    for i, (dy, dx) in enumerate(moves.tolist()):
        out[i] = torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))
    return out


def settings_key(settings: Settings, classes: list[str]) -> str:
    """A short hash of everything the weights depend on: settings, data, class list."""
    text = json.dumps({"settings": asdict(settings), "data": VERSION, "size": SIZE,
                       "classes": classes, "layout": LAYOUT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train(sets: dict[str, ImageSet], settings: Settings = Settings()) -> Trained:
    """Trains on sets["train"]; keeps the epoch with the best validation top-1."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    classes = sorted({e.subcategory for e in sets["train"].emoji})
    model = Classifier(len(classes), settings)
    trained = Trained(model, classes, {})
    images = torch.from_numpy(sets["train"].images)
    labels = torch.from_numpy(trained.labels(sets["train"]))
    valid = sets["validation"]
    valid_labels = trained.labels(valid)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    per_epoch = -(-len(images) // settings.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.learning_rate, total_steps=settings.epochs * per_epoch)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    began = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), settings.batch):
            pick = order[start:start + settings.batch]
            x = shifted(images[pick], settings.max_shift_px, generator)
            loss = F.cross_entropy(model(x), labels[pick])
            optimiser.zero_grad()
            torch.autograd.backward(loss)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(pick)
        model.eval()
        accuracy = top_k(trained.logits(valid.images), valid_labels, 1)
        history.append({"epoch": epoch, "train_loss": round(total / len(images), 4),
                        "valid_top1": round(accuracy, 4)})
        logger.info("classifier epoch %d: train loss %.3f, validation top-1 %.3f (%.0f s)",
                    epoch, total / len(images), accuracy, time.perf_counter() - began)
        if accuracy > best[0]:
            best = (accuracy, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    model.eval()
    trained.report = {"epoch": best[1], "history": history, "settings": asdict(settings),
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "training_time_s": round(time.perf_counter() - began, 1)}
    return trained


def accuracy_report(trained: Trained, sets: dict[str, ImageSet]) -> dict[str, float]:
    """Top-1 and top-5 on the real validation and test images."""
    out = {}
    for split in ("validation", "test"):
        logits = trained.logits(sets[split].images)
        labels = trained.labels(sets[split])
        out[f"{split}_top1"] = round(top_k(logits, labels, 1), 4)
        out[f"{split}_top5"] = round(top_k(logits, labels, 5), 4)
    return out


def load_or_train(sets: dict[str, ImageSet], settings: Settings = Settings(),
                  cache_dir: Path = CACHE_DIR) -> Trained:
    """The cached classifier for these settings, trained (about 2 min) when absent."""
    classes = sorted({e.subcategory for e in sets["train"].emoji})
    path = cache_dir / "classifier.pt"
    key = settings_key(settings, classes)
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        if saved.get("key") == key:
            model = Classifier(len(classes), settings)
            model.load_state_dict(saved["state"])
            model.eval()
            return Trained(model, classes, saved["report"])
        logger.info("%s was trained with other settings; retraining", path)
    trained = train(sets, settings)
    trained.report.update(accuracy_report(trained, sets))
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "state": trained.model.state_dict(), "report": trained.report},
               path)
    logger.info("classifier saved to %s: %s", path, {k: v for k, v in trained.report.items()
                                                     if k.endswith(("top1", "top5"))})
    return trained
