"""Export a Transformer to the ONNX graph of README section 2 (decode with a key/value cache)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES
from training.music.model import Transformer, load_checkpoint

if TYPE_CHECKING:  # exporting alone does not need onnxruntime
    import onnxruntime

DYNAMIC_AXES = {
    "tokens": {0: "batch", 1: "new"},
    "positions": {0: "batch", 1: "new"},
    "attention_mask": {0: "batch", 1: "total"},
    "past_keys": {0: "batch", 3: "past"},
    "past_values": {0: "batch", 3: "past"},
    "logits": {0: "batch"},
    "present_keys": {0: "batch", 3: "total"},
    "present_values": {0: "batch", 3: "total"},
}
OPSET = 17


def example_inputs(model: Transformer, batch: int, new: int, past: int,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random contract inputs: left-padded rows, real tokens, a random cache."""
    c = model.config
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, c.vocab_size, (batch, new), generator=generator)
    positions = torch.arange(past, past + new).repeat(batch, 1)
    mask = torch.ones(batch, past + new, dtype=torch.long)
    cache_shape = (batch, c.n_layers, c.n_heads, past, c.head_dim)
    past_keys = torch.randn(cache_shape, generator=generator)
    past_values = torch.randn(cache_shape, generator=generator)
    return tokens, positions, mask, past_keys, past_values


def export(model: Transformer | Path | str, out_path: Path | str, *, verify: bool = True) -> Path:
    """Write `model` (a Transformer or a checkpoint directory) as ONNX to `out_path`.

    Inputs/outputs and dynamic axes (batch, new tokens, cached positions) follow the
    contract. With verify=True, onnxruntime must match torch within 1e-4 on random inputs.
    """
    if not isinstance(model, Transformer):
        model, _ = load_checkpoint(Path(model))
    model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Trace with every dynamic axis > 1 so no size gets frozen into the graph as a constant.
    args = example_inputs(model, batch=2, new=3, past=2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model, args, str(out_path), input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET, dynamo=False,
        )
    if verify:
        for batch, new, past in ((1, 5, 0), (3, 1, 7), (2, 4, 3)):
            max_error = compare(model, out_path, example_inputs(model, batch, new, past, seed=1))
            if max_error > 1e-4:
                raise RuntimeError(f"ONNX differs from torch by {max_error:.2e} "
                                   f"(batch {batch}, new {new}, past {past})")
    return out_path


def run_onnx(session: onnxruntime.InferenceSession, inputs: tuple[torch.Tensor, ...]
             ) -> list[npt.NDArray[np.float32]]:
    """Outputs of an onnxruntime session for contract inputs given as torch tensors."""
    feed = {name: tensor.numpy() for name, tensor in zip(INPUT_NAMES, inputs, strict=True)}
    outputs: list[npt.NDArray[np.float32]] = session.run(list(OUTPUT_NAMES), feed)
    return outputs


def compare(model: Transformer, onnx_path: Path, inputs: tuple[torch.Tensor, ...]) -> float:
    """Largest absolute difference between torch and onnxruntime over all three outputs."""
    import onnxruntime  # imported here: exporting alone does not need it

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = [t.numpy() for t in model(*inputs)]
    got = run_onnx(session, inputs)
    return max(float(np.abs(e - g).max()) if e.size else 0.0
               for e, g in zip(expected, got, strict=True))
