"""Reads a llama GGUF: hyper-parameters, tokenizer, chat template, float32 weights.

Weights come back in torch's layout ([out, in] for a linear layer) and with llama.cpp's
rotary permutation of the query/key rows undone, so they are the Hugging Face layout and
the usual "rotate half" rotary applies (see `unpermute_rotary_rows`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


@dataclass(frozen=True)
class LlamaHyperParameters:
    """The llama.* metadata of a GGUF."""

    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    rope_theta: float
    rms_eps: float
    context_length: int
    vocab_size: int

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class GgufVocabulary:
    """The tokenizer.* metadata: a byte-level BPE vocabulary and its special tokens."""

    model: str              # tokenizer.ggml.model, "gpt2" = byte-level BPE
    pre: str                # tokenizer.ggml.pre, llama.cpp's pre-tokenizer name
    tokens: list[str]       # spelled in GPT-2's byte-to-unicode alphabet
    merges: list[str]       # "left right", best first
    token_types: list[int]
    bos_token_id: int | None
    eos_token_id: int | None
    unk_token_id: int | None
    pad_token_id: int | None
    add_bos_token: bool
    chat_template: str

    def special_tokens(self) -> list[str]:
        """Tokens marked CONTROL (e.g. <|im_start|>), in id order."""
        return [t for t, kind in zip(self.tokens, self.token_types, strict=True)
                if kind == TOKEN_TYPE_CONTROL]


@dataclass(frozen=True)
class GgufModel:
    """Everything read from one GGUF file."""

    path: Path
    sha256: str
    name: str
    hyper: LlamaHyperParameters
    vocabulary: GgufVocabulary
    tensors: dict[str, Array]          # GGUF names ("blk.0.attn_q.weight"), torch layout
    tensor_types: dict[str, str]       # GGUF names -> quantisation ("Q4_1", "Q8_0", "F32")


def read_gguf(path: Path) -> GgufModel:
    """Reads and dequantises a llama GGUF (about 2 s for 135M parameters)."""
    reader = gguf.GGUFReader(str(path))
    architecture = _field(reader, "general.architecture")
    if architecture != "llama":
        raise ValueError(f"{path}: architecture {architecture!r}, expected 'llama'")
    hyper = _hyper_parameters(reader)
    vocabulary = _vocabulary(reader)
    if len(vocabulary.tokens) != hyper.vocab_size:
        raise ValueError(f"{path}: {len(vocabulary.tokens)} tokens, vocab_size {hyper.vocab_size}")
    tensors: dict[str, Array] = {}
    tensor_types: dict[str, str] = {}
    for tensor in reader.tensors:
        # dequantize returns numpy order, the reverse of GGML's ne: [out, in] for a matrix.
        # F32 tensors come back as read-only views of the memory-mapped file: copy those.
        weights = np.array(gguf.quants.dequantize(tensor.data, tensor.tensor_type),
                           dtype=np.float32, order="C", copy=None)
        if not weights.flags.writeable:
            weights = weights.copy()
        if tensor.name.endswith("attn_q.weight"):
            weights = unpermute_rotary_rows(weights, hyper.n_heads)
        elif tensor.name.endswith("attn_k.weight"):
            weights = unpermute_rotary_rows(weights, hyper.n_kv_heads)
        tensors[tensor.name] = weights
        tensor_types[tensor.name] = tensor.tensor_type.name
    return GgufModel(path=path, sha256=file_sha256(path), name=str(_field(reader, "general.name")),
                     hyper=hyper, vocabulary=vocabulary, tensors=tensors,
                     tensor_types=tensor_types)


def unpermute_rotary_rows(weights: Array, n_heads: int) -> Array:
    """Undoes llama.cpp's convert-time permutation of a query or key projection.

    Hugging Face's llama rotates the two halves of each head ([x0..x31] with [x32..x63]);
    llama.cpp rotates adjacent pairs, so its converter reorders each head's output rows
    from [half0, half1] to interleaved [h0[0], h1[0], h0[1], h1[1], ...]. Reading the rows
    as (head, pair, 2) and swapping the last two axes puts the halves back.
    """
    rows, columns = weights.shape
    half = rows // n_heads // 2
    restored = weights.reshape(n_heads, half, 2, columns).swapaxes(1, 2)
    return np.ascontiguousarray(restored.reshape(rows, columns))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hyper_parameters(reader: gguf.GGUFReader) -> LlamaHyperParameters:
    n_heads = int(_field(reader, "llama.attention.head_count"))
    d_model = int(_field(reader, "llama.embedding_length"))
    rope_dims = _field(reader, "llama.rope.dimension_count", d_model // n_heads)
    if int(rope_dims) != d_model // n_heads:
        raise ValueError(f"partial rotary ({rope_dims} of {d_model // n_heads} dims) unsupported")
    if "llama.rope.scaling.type" in reader.fields:
        raise ValueError("rope scaling is not supported")
    tokens = reader.fields["tokenizer.ggml.tokens"]
    return LlamaHyperParameters(
        n_layers=int(_field(reader, "llama.block_count")),
        d_model=d_model,
        d_ff=int(_field(reader, "llama.feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv", n_heads)),
        rope_theta=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        context_length=int(_field(reader, "llama.context_length")),
        vocab_size=int(_field(reader, "llama.vocab_size", len(tokens.data))),
    )


def _vocabulary(reader: gguf.GGUFReader) -> GgufVocabulary:
    model = str(_field(reader, "tokenizer.ggml.model"))
    if model != "gpt2":
        raise ValueError(f"tokenizer {model!r} unsupported: only byte-level BPE ('gpt2')")

    def optional_id(key: str) -> int | None:
        value = _field(reader, key, None)
        return None if value is None else int(value)

    return GgufVocabulary(
        model=model,
        pre=str(_field(reader, "tokenizer.ggml.pre", "default")),
        tokens=[str(t) for t in _field(reader, "tokenizer.ggml.tokens")],
        merges=[str(m) for m in _field(reader, "tokenizer.ggml.merges")],
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type")],
        bos_token_id=optional_id("tokenizer.ggml.bos_token_id"),
        eos_token_id=optional_id("tokenizer.ggml.eos_token_id"),
        unk_token_id=optional_id("tokenizer.ggml.unknown_token_id"),
        pad_token_id=optional_id("tokenizer.ggml.padding_token_id"),
        add_bos_token=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        chat_template=str(_field(reader, "tokenizer.chat_template", "")),
    )


_MISSING = object()


def _field(reader: gguf.GGUFReader, key: str, default: Any = _MISSING) -> Any:
    """A metadata value as Python (str, number, bool or list); `default` when absent."""
    field = reader.fields.get(key)
    if field is None:
        if default is _MISSING:
            raise KeyError(f"GGUF has no {key!r}")
        return default
    return field.contents()
