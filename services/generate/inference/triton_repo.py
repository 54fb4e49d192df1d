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
_DIMS_COMMENT = {
    "decode": (
        "# Dims leave out the batch dimension (max_batch_size > 0); -1 is the cache length P",
        "# or the new-token count T. The model file goes in 1/model.onnx (not committed)."),
    "audio": ("# Dims leave out the batch dimension (max_batch_size > 0); -1 is the frame count T",
              "# (125 frames a second). The model file goes in 1/model.onnx (not committed)."),
    "image": ("# Dims leave out the batch dimension (max_batch_size > 0): one DDIM step per call,",
              "# prompted and unprompted rows together. The model file goes in 1/model.onnx."),
}


def contract_tensors(model_json: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the model's ONNX contract as (name, Triton type, dims without batch).

    Decode models (music, text) share the key/value-cache contract; an "audio" model (the
    neural synthesiser) maps frame controls to harmonic and noise frames
    (services/generate/README.md, sections 2 and 4).
    """
    if model_json.get("modality") == "audio":
        return _audio_tensors(model_json)
    if model_json.get("modality") == "image":
        return _image_tensors(model_json)
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


def timbre_size(model_json: dict[str, Any]) -> int:
    """Length of an audio model's instrument embeddings (the `timbre` input's last axis)."""
    if "timbre_size" in model_json:
        return int(model_json["timbre_size"])
    return len(model_json["instruments"][0]["embedding"])


def _audio_tensors(model_json: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs = [("f0_hz", "TYPE_FP32", [-1]), ("loudness_db", "TYPE_FP32", [-1]),
              ("timbre", "TYPE_FP32", [timbre_size(model_json)])]
    outputs = [("amplitudes", "TYPE_FP32", [-1, int(model_json["n_harmonics"])]),
               ("noise", "TYPE_FP32", [-1, int(model_json["n_noise_bands"])])]
    return inputs, outputs


def _image_tensors(model_json: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    image = [int(model_json["channels"]), int(model_json["size"]), int(model_json["size"])]
    inputs = [("x", "TYPE_FP32", image), ("t", "TYPE_FP32", [1]),
              ("text", "TYPE_FP32", [int(model_json["text_size"])])]
    return inputs, [("eps", "TYPE_FP32", image)]


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
        *_DIMS_COMMENT.get(str(model_json.get("modality")), _DIMS_COMMENT["decode"]),
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
    """Writes a Triton model repository entry for each model folder (all served ones by default)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=pathlib.Path, action="append",
                        help="a model folder; repeat for several (default: every folder "
                             "under models/generate with a model.json and a model.onnx)")
    parser.add_argument("--out", type=pathlib.Path, default=DEPLOY_REPOSITORY,
                        help="model repository folder (default: the committed one in deploy/)")
    parser.add_argument("--config-only", action="store_true",
                        help="write config.pbtxt only (what is committed), not 1/model.onnx")
    parser.add_argument("--link", action="store_true", help="symlink model.onnx, not a copy")
    args = parser.parse_args()
    folders = args.model_dir or sorted(
        p.parent for p in (ROOT / "models" / "generate").glob("*/model.json")
        if (p.parent / "model.onnx").is_file())
    for folder in folders:
        entry = write_entry(folder, args.out, with_model=not args.config_only, link=args.link)
        print(f"wrote {entry}")


if __name__ == "__main__":
    main()
