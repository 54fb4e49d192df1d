"""A tiny untrained model folder that follows the ONNX contract, for backend tests."""

from __future__ import annotations

import json
import pathlib
import warnings

import torch

from services.generate.tokens import SERVED_VOCABULARY
from services.generate.training.model import ModelConfig, Transformer

INPUTS = ("tokens", "positions", "attention_mask", "past_keys", "past_values")
OUTPUTS = ("logits", "present_keys", "present_values")


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
    past = torch.randn(2, config.n_layers, config.n_heads, 3, config.head_dim)
    example = (torch.ones(2, 2, dtype=torch.long), torch.tensor([[3, 4], [3, 4]]),
               torch.ones(2, 5, dtype=torch.long), past, past.clone())
    cache_axes = {0: "batch", 3: "past"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model, example, str(folder / "model.onnx"), input_names=list(INPUTS),
            output_names=list(OUTPUTS), dynamo=False, opset_version=17,
            dynamic_axes={"tokens": {0: "batch", 1: "new"}, "positions": {0: "batch", 1: "new"},
                          "attention_mask": {0: "batch", 1: "total"},
                          "past_keys": cache_axes, "past_values": cache_axes,
                          "logits": {0: "batch"}, "present_keys": {0: "batch", 3: "total"},
                          "present_values": {0: "batch", 3: "total"}})
    (folder / "model.json").write_text(json.dumps({
        "name": name, "version": "test", "vocabulary": SERVED_VOCABULARY.to_json(),
        "steps_per_quarter": 4, "n_layers": config.n_layers, "n_heads": config.n_heads,
        "head_dim": config.head_dim, "d_model": config.d_model,
        "max_positions": config.max_positions, "card": {}}, indent=2) + "\n")
    return folder
