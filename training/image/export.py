"""Writes the trained denoiser as a model folder: model.onnx and model.json (with its card)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.generate.image.schedule import TRAIN_STEPS
from training.image.data import PACKAGE, SIZE, VERSION
from training.image.model import UNet, UNetConfig

logger = logging.getLogger(__name__)

NAME = "cadenza-motif"
MODEL_VERSION = "1"
INPUT_NAMES = ("x", "t", "text")
OUTPUT_NAMES = ("eps",)
DYNAMIC_AXES = {"x": {0: "batch"}, "t": {0: "batch"}, "text": {0: "batch"},
                "eps": {0: "batch"}}
OPSET = 17


def load_run(checkpoint: Path) -> tuple[UNet, dict[str, Any]]:
    """The best EMA denoiser saved by training and its run record."""
    saved = torch.load(checkpoint, weights_only=False)
    model = UNet(UNetConfig())
    model.load_state_dict(saved["state"])
    model.eval()
    run = {"history": saved["history"], "best_step": saved["step"],
           "best_valid_loss": saved["best_valid_loss"], "training_time_s": saved["elapsed_s"],
           "seed": saved["seed"], "settings": saved["settings"], "splits": saved["splits"]}
    return model, run


class Graph(torch.nn.Module):
    """The exported contract: t as [B, 1], so every input has a batch axis and a shape
    Triton can declare (dims [1]) without a reshape."""

    def __init__(self, model: UNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """eps for x [B, C, S, S] at t [B, 1] under text [B, D]."""
        return self.model(x, t[:, 0], text)  # type: ignore[no-any-return]


def export_onnx(model: UNet, path: Path) -> None:
    """The denoiser as ONNX; onnxruntime must match torch within 1e-4."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(0)
    x = torch.randn((3, 4, SIZE, SIZE), generator=generator)
    t = torch.tensor([[0.0], [500.0], [999.0]])
    text = torch.nn.functional.normalize(torch.randn((3, 384), generator=generator), dim=1)
    graph = Graph(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x, t, text), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=DYNAMIC_AXES,
                          opset_version=OPSET, dynamo=False)
        expected = graph(x, t, text).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(list(OUTPUT_NAMES), {"x": x.numpy(), "t": t.numpy(),
                                              "text": text.numpy()})
    error = float(np.abs(expected - got).max())
    if error > 1e-4:
        raise AssertionError(f"onnxruntime eps differs from torch by {error}")


def export_model(model: UNet, run: dict[str, Any], out: Path) -> None:
    """model.onnx and model.json (tensor shapes, sampling defaults, card) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / "model.onnx")
    config = model.config
    data = {
        "name": NAME, "version": MODEL_VERSION, "modality": "image",
        "inputs": list(INPUT_NAMES), "outputs": list(OUTPUT_NAMES),
        "channels": config.channels, "size": config.size, "text_size": config.text_size,
        "train_steps": TRAIN_STEPS, "schedule": "cosine", "prediction": "eps",
        "text_encoder": "all-MiniLM-L6-v2 (models/text)",
        "card": {
            "description": ("Text-conditioned denoising diffusion model (DDPM training, DDIM "
                            "sampling, classifier-free guidance): a U-Net predicting the "
                            f"noise in {config.size}x{config.size} premultiplied RGBA images, "
                            "conditioned on a MiniLM sentence embedding of the prompt."),
            "training_data": (f"{run['splits']['train']} Noto Emoji images with their names "
                              f"(npm {PACKAGE} {VERSION}); flags and components left out; "
                              "split 80/10/10 by emoji within each subcategory"),
            "representation": f"{config.size}x{config.size} RGBA, alpha-premultiplied, [-1, 1]",
            "licence": ("weights: ours; images: Noto Emoji, Apache License 2.0 (Google); "
                        "names and categories: emoji-datasource, MIT (Cal Henderson)"),
            "parameters": sum(p.numel() for p in model.parameters()),
            "training_time_s": round(float(run["training_time_s"]), 1),
            "metrics": {"valid_eps_mse": round(float(run["best_valid_loss"]), 5)},
            "best_step": run["best_step"], "seed": run["seed"], "settings": run["settings"],
            "history": run["history"],
        },
    }
    (out / "model.json").write_text(json.dumps(data, indent=1) + "\n")
