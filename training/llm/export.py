"""Exports our Llama to the ONNX decode contract (services/generate/README.md section 2)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES
from training.llm.model import Llama

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


def example_inputs(model: Llama, batch: int, new: int, past: int,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Contract inputs: real tokens, true positions, a random cache, the first row padded."""
    c = model.config
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, c.vocab_size, (batch, new), generator=generator)
    positions = torch.arange(past, past + new).repeat(batch, 1)
    mask = torch.ones(batch, past + new, dtype=torch.long)
    if batch > 1 and past > 0:
        mask[0, :1] = 0  # a left-padded row, so no mask value gets frozen into the graph
    cache_shape = (batch, c.n_layers, c.n_kv_heads, past, c.head_dim)
    past_keys = torch.randn(cache_shape, generator=generator)
    past_values = torch.randn(cache_shape, generator=generator)
    return tokens, positions, mask, past_keys, past_values


def export(model: Llama, out_path: Path) -> Path:
    """Writes `model` as one fp32 ONNX file (under protobuf's 2 GiB, so no external data)."""
    model.eval()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Trace with every dynamic axis > 1 so no size gets frozen into the graph as a constant.
    args = example_inputs(model, batch=2, new=3, past=2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        # torch.jit exports TracerWarning at run time, but its type stubs do not re-export it.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        torch.onnx.export(
            model, args, str(out_path), input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    if model.config.tied_output:
        _share_tied_head(out_path)
    return out_path


def _share_tied_head(path: Path) -> None:
    """Makes the output head read the embedding matrix itself, not a transposed copy.

    Constant folding stores the head as MatMul with the embedding transposed: a second
    113 MB matrix. Gemm with transB=1 reads the original [V, d] one (its input is [B, d]).
    """
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    gather = next(n for n in graph.node if n.op_type == "Gather" and "tokens" in n.input)
    embedding_name = gather.input[0]
    head = next(n for n in graph.node if "logits" in n.output)
    initializers = {i.name: i for i in graph.initializer}
    transposed = initializers.get(head.input[1]) if head.op_type == "MatMul" else None
    if transposed is None:
        raise RuntimeError(f"unexpected head {head.op_type}({list(head.input)})")
    embedding = numpy_helper.to_array(initializers[embedding_name])
    if not np.array_equal(numpy_helper.to_array(transposed), embedding.T):
        raise RuntimeError("the head's matrix is not the transposed token embedding")
    gemm = helper.make_node("Gemm", [head.input[0], embedding_name], list(head.output),
                            name="/head/Gemm", transB=1)
    nodes = [gemm if n is head else n for n in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.remove(transposed)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))
