"""The inference port: what the generator needs from ONNX Runtime or Triton."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from services.generate.music.tokens import Vocabulary

# The ONNX graph's contract (services/generate/README.md, section 2).
INPUT_NAMES = ("tokens", "positions", "attention_mask", "past_keys", "past_values")
OUTPUT_NAMES = ("logits", "present_keys", "present_values")
# Contract tensors by name; dtypes differ (int64 tokens, positions, mask; float32 the rest).
Tensors = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class ModelSpec:
    """A model folder's model.json: shapes the batcher needs and the card ListModels shows."""

    name: str
    version: str
    folder: pathlib.Path
    n_layers: int
    n_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    steps_per_quarter: int
    vocabulary: Vocabulary
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> pathlib.Path:
        """The model's ONNX file."""
        return self.folder / "model.onnx"

    @classmethod
    def load(cls, folder: pathlib.Path) -> ModelSpec:
        """Reads the model.json of a model folder."""
        data = json.loads((folder / "model.json").read_text())
        vocabulary = Vocabulary.from_json(data["vocabulary"])
        return cls(name=str(data["name"]), version=str(data["version"]), folder=folder,
                   n_layers=int(data["n_layers"]), n_heads=int(data["n_heads"]),
                   head_dim=int(data["head_dim"]), vocab_size=vocabulary.size,
                   max_positions=int(data["max_positions"]),
                   steps_per_quarter=int(data["steps_per_quarter"]),
                   vocabulary=vocabulary, card=dict(data.get("card", {})))

    def empty_cache(self, batch: int = 1) -> npt.NDArray[np.float32]:
        """A key or value cache with no past positions, [B, L, H, 0, D]."""
        return np.zeros((batch, self.n_layers, self.n_heads, 0, self.head_dim), np.float32)


class InferenceBackend(Protocol):
    """Runs one decode call of a loaded model: the five contract inputs in, three out."""

    name: str

    async def load(self, model: ModelSpec) -> None:
        """Returns when the model is ready to serve."""

    async def run(self, model_name: str, inputs: Tensors) -> Tensors:
        """One call for the whole batch; raises cadenza.kit.errors on failure."""

    async def close(self) -> None:
        """Releases the backend's sessions or connections."""
