"""The inference port: what the generator needs from ONNX Runtime or Triton."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

# The tensor table lives in triton_repo (standard library only) because the Triton dev
# server, which runs in .venv-triton and imports no cadenza code, declares it too.
from services.generate.inference.triton_repo import contract_tensors, timbre_size
from services.generate.music.tokens import Vocabulary

# The decode models' ONNX contract (services/generate/README.md, section 2); an audio
# model's is in section 4. ModelSpec.tensors() gives any model's, with its shapes.
INPUT_NAMES = ("tokens", "positions", "attention_mask", "past_keys", "past_values")
OUTPUT_NAMES = ("logits", "present_keys", "present_values")
DECODE_MODALITIES = ("music", "text")
# Contract tensors by name; dtypes differ (int64 tokens, positions, mask; float32 the rest).
Tensors = dict[str, npt.NDArray[Any]]
_NUMPY_TYPES: dict[str, np.dtype[Any]] = {"TYPE_FP32": np.dtype(np.float32),
                                          "TYPE_INT64": np.dtype(np.int64)}


@dataclass(frozen=True)
class TensorContract:
    """One input or output a backend must serve: name, numpy dtype, shape (-1 = any size)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]   # batch first

    @property
    def triton_type(self) -> str:
        """Triton's name of the dtype ("FP32", "INT64"), as model metadata reports it."""
        return "FP32" if self.dtype == np.float32 else "INT64"


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


@dataclass(frozen=True)
class AudioSpec:
    """What an audio model (the neural synthesiser) adds: its frame grid and instruments.

    The instruments stay as model.json has them (name, program, low, high, embedding,
    envelope); services/generate/audio/model.py reads them into its own types.
    """

    sample_rate_hz: int
    hop: int
    n_harmonics: int
    n_noise_bands: int
    timbre_size: int
    reverb_file: pathlib.Path
    instruments: tuple[dict[str, Any], ...]

    @classmethod
    def from_json(cls, folder: pathlib.Path, data: dict[str, Any]) -> AudioSpec:
        """The audio fields of an audio model's model.json."""
        return cls(sample_rate_hz=int(data["sample_rate_hz"]), hop=int(data["hop"]),
                   n_harmonics=int(data["n_harmonics"]),
                   n_noise_bands=int(data["n_noise_bands"]), timbre_size=timbre_size(data),
                   reverb_file=folder / str(data.get("reverb", "reverb.npy")),
                   instruments=tuple(dict(i) for i in data["instruments"]))

    @property
    def instrument_names(self) -> tuple[str, ...]:
        """The names a Timbre may use, in model.json's order."""
        return tuple(str(i["name"]) for i in self.instruments)


@dataclass(frozen=True)
class ImageSpec:
    """What an image model (the motif denoiser) adds: the image it makes, the text it reads."""

    channels: int
    size: int
    text_size: int
    default_guidance: float   # chosen on the validation split (make eval-image)
    default_steps: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageSpec:
        """The image fields of an image model's model.json."""
        sampling = data.get("sampling", {})
        return cls(channels=int(data["channels"]), size=int(data["size"]),
                   text_size=int(data["text_size"]),
                   default_guidance=float(sampling.get("guidance", 3.0)),
                   default_steps=int(sampling.get("steps", 50)))


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


@dataclass(frozen=True)
class ModelSpec:
    """A model folder's model.json: its tensor contract, shapes and the card ListModels shows.

    Music and text models are decoders with the same key/value-cache contract (what their
    tokens mean comes with a Vocabulary or a TextSpec); an audio model maps frame
    controls to synthesiser frames and carries an AudioSpec. The decode fields
    (n_layers ... max_positions) are 0 for an audio model.
    """

    name: str
    version: str
    folder: pathlib.Path
    n_layers: int = 0
    n_heads: int = 0      # heads of the key/value cache (the KV heads of a GQA model)
    head_dim: int = 0
    vocab_size: int = 0
    max_positions: int = 0
    modality: str = "music"   # "music" | "text" | "audio" | "image"
    steps_per_quarter: int = 0
    vocabulary: Vocabulary | None = None
    text: TextSpec | None = None
    audio: AudioSpec | None = None
    image: ImageSpec | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def decoder(self) -> bool:
        """True for a KV-cache decoder (music, text), served through a DecodeBatcher."""
        return self.modality in DECODE_MODALITIES

    def tensors(self) -> tuple[tuple[TensorContract, ...], tuple[TensorContract, ...]]:
        """(inputs, outputs) this model's graph must have, from its current fields."""
        if self.image is not None:
            shape: dict[str, Any] = {
                "modality": "image", "channels": self.image.channels,
                "size": self.image.size, "text_size": self.image.text_size}
        elif self.audio is not None:
            shape = {
                "modality": "audio", "timbre_size": self.audio.timbre_size,
                "n_harmonics": self.audio.n_harmonics,
                "n_noise_bands": self.audio.n_noise_bands}
        else:
            shape = {"n_layers": self.n_layers, "n_heads": self.n_heads,
                     "head_dim": self.head_dim, "vocab_size": self.vocab_size}
        inputs, outputs = contract_tensors(shape)
        return (tuple(_contract(t) for t in inputs), tuple(_contract(t) for t in outputs))

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph's input names, in contract order."""
        return tuple(t.name for t in self.tensors()[0])

    @property
    def output_names(self) -> tuple[str, ...]:
        """The graph's output names, in contract order."""
        return tuple(t.name for t in self.tensors()[1])

    @property
    def synthesiser(self) -> AudioSpec:
        """The audio fields; ValueError for a model of another modality."""
        if self.audio is None:
            raise ValueError(f"model {self.name} is a {self.modality} model, not an audio one")
        return self.audio

    @property
    def picture(self) -> ImageSpec:
        """The image fields; ValueError for a model of another modality."""
        if self.image is None:
            raise ValueError(f"model {self.name} is a {self.modality} model, not an image one")
        return self.image

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
        if modality == "audio":
            return cls(name=str(data["name"]), version=str(data["version"]), folder=folder,
                       modality=modality, audio=AudioSpec.from_json(folder, data),
                       card=dict(data.get("card", {})))
        if modality == "image":
            return cls(name=str(data["name"]), version=str(data["version"]), folder=folder,
                       modality=modality, image=ImageSpec.from_json(data),
                       card=dict(data.get("card", {})))
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


def _contract(tensor: tuple[str, str, list[int]]) -> TensorContract:
    name, triton_type, dims = tensor
    return TensorContract(name, _NUMPY_TYPES[triton_type], (-1, *dims))


class InferenceBackend(Protocol):
    """Runs one call of a loaded model: its contract's inputs in, its outputs out.

    For a decoder that is one decode step (five inputs, three outputs); for an audio
    model, frame controls in and synthesiser frames out.
    """

    name: str

    async def load(self, model: ModelSpec) -> None:
        """Returns when the model is ready to serve."""

    async def run(self, model_name: str, inputs: Tensors) -> Tensors:
        """One call for the whole batch; raises cadenza.kit.errors on failure."""

    async def close(self) -> None:
        """Releases the backend's sessions or connections."""
