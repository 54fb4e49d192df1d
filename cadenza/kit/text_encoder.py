"""Sentence embeddings (all-MiniLM-L6-v2) on ONNX Runtime: onnxruntime, tokenizers, numpy only.

Shared plumbing: retrieval embeds tracks and queries with it, generate embeds image
prompts, and both must get the same numbers for the same text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

__all__ = ["ModelCard", "TextEncoder", "default_providers"]

logger = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
DEFAULT_BATCH_SIZE = 32
# One thread per inference: on a 2-core host the event loop and the store thread need the
# other core, and more sessions in parallel (compute_workers) scale better than more threads.
DEFAULT_INTRA_OP_THREADS = 1


@dataclass(frozen=True)
class ModelCard:
    """What TextEncoder needs from model_card.json (written by training/text_encoder.py)."""

    onnx_file: str
    tokenizer_file: str
    inputs: tuple[str, ...]
    output: str
    dimensions: int
    max_seq_length: int

    @classmethod
    def read(cls, model_dir: Path) -> ModelCard:
        """Reads model_dir's card; FileNotFoundError says how to export the model."""
        path = model_dir / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no text model in {model_dir} ({CARD_FILE} is missing); "
                "run `python -m training.text_encoder --out "
                f"{model_dir}/minilm-l6-v2.onnx`")
        raw = json.loads(path.read_text())
        return cls(onnx_file=raw["onnx_file"], tokenizer_file=raw["tokenizer_file"],
                   inputs=tuple(raw["inputs"]), output=raw["output"],
                   dimensions=int(raw["dimensions"]), max_seq_length=int(raw["max_seq_length"]))


class TextEncoder:
    """Turns texts into float32 unit vectors; thread-safe, so calls may share one instance."""

    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer, card: ModelCard,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._session = session
        self._tokenizer = tokenizer
        self._card = card
        self._batch_size = batch_size
        self._pad_id = tokenizer.token_to_id("[PAD]") or 0

    @classmethod
    def load(cls, model_dir: Path, providers: list[str] | None = None, *,
             intra_op_threads: int = DEFAULT_INTRA_OP_THREADS,
             batch_size: int = DEFAULT_BATCH_SIZE) -> TextEncoder:
        """Opens the model exported into model_dir; CUDA first when onnxruntime offers it."""
        card = ModelCard.read(model_dir)
        if providers is None:
            providers = default_providers()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(model_dir / card.onnx_file), options,
                                       providers=providers)
        tokenizer = Tokenizer.from_file(str(model_dir / card.tokenizer_file))
        # Padding is done per batch below; truncation follows the model, not the file.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=card.max_seq_length)
        logger.info("text encoder %s loaded on %s (%d intra-op threads, max %d tokens)",
                    card.onnx_file, session.get_providers()[0], intra_op_threads,
                    card.max_seq_length)
        return cls(session, tokenizer, card, batch_size)

    @property
    def dimensions(self) -> int:
        """Length of each embedding."""
        return self._card.dimensions

    @property
    def max_seq_length(self) -> int:
        """Tokens per text the model reads; longer texts are truncated."""
        return self._card.max_seq_length

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeds texts: float32 array of shape (len(texts), dimensions), rows of unit norm.

        Texts past max_seq_length tokens are truncated; the empty string is allowed.
        """
        out = np.empty((len(texts), self._card.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length pad less: a long description does not slow the titles.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            rows = order[start:start + self._batch_size]
            input_ids, attention_mask = self._pad([encodings[i].ids for i in rows])
            (vectors,) = self._session.run(
                [self._card.output],
                {self._card.inputs[0]: input_ids, self._card.inputs[1]: attention_mask})
            out[rows] = vectors
        return out

    def _pad(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, :len(row)] = row
            attention_mask[r, :len(row)] = 1
        return input_ids, attention_mask


def default_providers() -> list[str]:
    """CUDA then CPU when onnxruntime has CUDA and the host an NVIDIA GPU, else CPU alone."""
    # onnxruntime-gpu lists CUDA even on hosts without a GPU, then logs loud load errors.
    has_gpu = any(Path("/dev").glob("nvidia[0-9]*"))
    if has_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
