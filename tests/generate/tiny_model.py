"""A tiny untrained model folder that follows the ONNX contract, for backend tests."""

from __future__ import annotations

import json
import pathlib

import torch

from services.generate.music.tokens import SERVED_VOCABULARY
from training.music.export import export
from training.music.model import ModelConfig, Transformer


def write_tiny_model(folder: pathlib.Path, name: str = "tiny-poly", seed: int = 0, *,
                     d_model: int = 32, n_layers: int = 2, n_heads: int = 2,
                     max_positions: int = 128) -> pathlib.Path:
    """model.onnx + model.json in `folder`; untrained, served vocabulary, 2 layers of 2 heads
    of 16 unless told (bench uses the served model's shape)."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=SERVED_VOCABULARY.size, d_model=d_model, n_layers=n_layers,
                         n_heads=n_heads, max_positions=max_positions, dropout=0.0)
    model = Transformer(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    export(model, folder / "model.onnx", verify=False)  # the training pipeline's exporter
    (folder / "model.json").write_text(json.dumps({
        "name": name, "version": "test", "vocabulary": SERVED_VOCABULARY.to_json(),
        "steps_per_quarter": 4, "n_layers": config.n_layers, "n_heads": config.n_heads,
        "head_dim": config.head_dim, "d_model": config.d_model,
        "max_positions": config.max_positions, "card": {}}, indent=2) + "\n")
    return folder
