"""Writes a Triton model repository entry (config.pbtxt + 1/model.onnx) from a model folder."""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEPLOY_REPOSITORY = ROOT / "deploy" / "triton" / "model_repository"

# Requests that reach the Triton queue are already batches (the service pads its own
# concurrent decode steps into one call), so the server-side batcher only merges calls
# from several service replicas. Triton merges requests only when every input has the
# same shape (its ragged-batching docs), which for this graph means the same P and T.
MAX_BATCH_SIZE = 32
MAX_QUEUE_DELAY_US = 500
TRITON_VERSION = "1"  # Triton's version folders are integers; model.json holds ours.

# (name, Triton data type, dims without the batch dimension)
TensorSpec = tuple[str, str, list[int]]


def contract_tensors(model_json: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the ONNX contract as (name, Triton type, dims without batch)."""
    cache = [int(model_json["n_layers"]), int(model_json["n_heads"]), -1,
             int(model_json["head_dim"])]
    inputs = [("tokens", "TYPE_INT64", [-1]), ("positions", "TYPE_INT64", [-1]),
              ("attention_mask", "TYPE_INT64", [-1]), ("past_keys", "TYPE_FP32", cache),
              ("past_values", "TYPE_FP32", cache)]
    vocab_size = (int(model_json["vocab_size"]) if "vocabulary" not in model_json
                  else int(model_json["vocabulary"]["size"]))
    outputs = [("logits", "TYPE_FP32", [vocab_size]),
               ("present_keys", "TYPE_FP32", cache), ("present_values", "TYPE_FP32", cache)]
    return inputs, outputs


def _tensor_block(kind: str, tensors: list[TensorSpec]) -> list[str]:
    lines = [f"{kind} ["]
    for i, (name, data_type, dims) in enumerate(tensors):
        comma = "," if i < len(tensors) - 1 else ""
        lines.append(f'  {{ name: "{name}" data_type: {data_type} '
                     f"dims: [ {', '.join(str(d) for d in dims)} ] }}{comma}")
    lines.append("]")
    return lines


def render_config(model_json: dict[str, Any]) -> str:
    """config.pbtxt text for the onnxruntime backend, dims from model.json."""
    inputs, outputs = contract_tensors(model_json)
    lines = [
        "# Written by services/generate/inference/triton_repo.py from "
        f"models/generate/{model_json['name']}/model.json; do not edit by hand.",
        "# Dims leave out the batch dimension (max_batch_size > 0); -1 is the cache length P",
        "# or the new-token count T. The model file goes in 1/model.onnx (not committed).",
        f'name: "{model_json["name"]}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {MAX_BATCH_SIZE}",
        "version_policy: { latest: { num_versions: 1 } }",
        *_tensor_block("input", inputs),
        *_tensor_block("output", outputs),
        f"dynamic_batching {{ max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US} }}",
        "instance_group [ { kind: KIND_GPU count: 1 } ]",
    ]
    return "\n".join(lines) + "\n"


def write_entry(model_dir: pathlib.Path, repository: pathlib.Path, *, with_model: bool = True,
                link: bool = False) -> pathlib.Path:
    """Writes <repository>/<name>/config.pbtxt (and 1/model.onnx); returns the entry folder."""
    model_json = json.loads((model_dir / "model.json").read_text())
    entry = repository / str(model_json["name"])
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "config.pbtxt").write_text(render_config(model_json))
    if with_model:
        target = entry / TRITON_VERSION / "model.onnx"
        target.parent.mkdir(exist_ok=True)
        target.unlink(missing_ok=True)
        source = (model_dir / "model.onnx").resolve()
        if link:
            target.symlink_to(source)
        else:
            shutil.copyfile(source, target)
    return entry


def main() -> None:
    """Writes a Triton model repository for one model folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=pathlib.Path,
                        default=ROOT / "models" / "generate" / "cadenza-poly")
    parser.add_argument("--out", type=pathlib.Path, default=DEPLOY_REPOSITORY,
                        help="model repository folder (default: the committed one in deploy/)")
    parser.add_argument("--config-only", action="store_true",
                        help="write config.pbtxt only (what is committed), not 1/model.onnx")
    parser.add_argument("--link", action="store_true", help="symlink model.onnx, not a copy")
    args = parser.parse_args()
    entry = write_entry(args.model_dir, args.out, with_model=not args.config_only,
                        link=args.link)
    print(f"wrote {entry}")


if __name__ == "__main__":
    main()
