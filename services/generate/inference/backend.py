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
class TextSpec:
    """What a text model adds to its spec: tokenizer file, chat template, special ids."""

    tokenizer_file: pathlib.Path
    chat_template: str
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None

    @classmethod
    def from_json(cls, folder: pathlib.Path, data: dict[str, Any]) -> TextSpec:
        """The "text" section of a text model's model.json."""
        return cls(tokenizer_file=folder / str(data["tokenizer"]),
                   chat_template=str(data["chat_template"]),
                   bos_token_id=_optional_int(data.get("bos_token_id")),
                   eos_token_ids=tuple(int(i) for i in data["eos_token_ids"]),
                   pad_token_id=_optional_int(data.get("pad_token_id")))


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


@dataclass(frozen=True)
class ModelSpec:
    """A model folder's model.json: shapes the batcher needs and the card ListModels shows.

    Every model speaks the same ONNX contract; what its tokens mean depends on the
    modality: music models carry a Vocabulary, text models a TextSpec.
    """

    name: str
    version: str
    folder: pathlib.Path
    n_layers: int
    n_heads: int          # heads of the key/value cache (the KV heads of a GQA model)
    head_dim: int
    vocab_size: int
    max_positions: int
    modality: str = "music"   # "music" | "text"
    steps_per_quarter: int = 0
    vocabulary: Vocabulary | None = None
    text: TextSpec | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> pathlib.Path:
        """The model's ONNX file."""
        return self.folder / "model.onnx"

    @property
    def music(self) -> Vocabulary:
        """The music vocabulary; ValueError for a model of another modality."""
        if self.vocabulary is None:
            raise ValueError(f"model {self.name} is a {self.modality} model, not a music one")
        return self.vocabulary

    @property
    def warmup_token(self) -> int:
        """A token that starts every sequence, for the warm-up call."""
        if self.vocabulary is not None:
            return self.vocabulary.BOS
        text = self.text
        return 0 if text is None or text.bos_token_id is None else text.bos_token_id

    @classmethod
    def load(cls, folder: pathlib.Path) -> ModelSpec:
        """Reads the model.json of a model folder."""
        data = json.loads((folder / "model.json").read_text())
        modality = str(data.get("modality", "music"))
        vocabulary = None if modality == "text" else Vocabulary.from_json(data["vocabulary"])
        return cls(name=str(data["name"]), version=str(data["version"]), folder=folder,
                   n_layers=int(data["n_layers"]), n_heads=int(data["n_heads"]),
                   head_dim=int(data["head_dim"]),
                   vocab_size=(vocabulary.size if vocabulary is not None
                               else int(data["vocab_size"])),
                   max_positions=int(data["max_positions"]), modality=modality,
                   steps_per_quarter=int(data.get("steps_per_quarter", 0)),
                   vocabulary=vocabulary,
                   text=(TextSpec.from_json(folder, data["text"]) if modality == "text"
                         else None),
                   card=dict(data.get("card", {})))

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
