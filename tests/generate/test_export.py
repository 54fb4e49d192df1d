"""The exported ONNX graph computes what the torch model computes, cache and padding included."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from training.music.export import export, run_onnx
from training.music.model import ModelConfig, Transformer

ATOL = 1e-4
VOCAB = 24


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4,
                         max_positions=64, dropout=0.1)
    model = Transformer(config).eval()
    with torch.no_grad():  # the distance biases start at zero; make them count here
        for block in model.blocks:
            block.distance_bias.weight.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="module")
def session(model, tmp_path_factory) -> onnxruntime.InferenceSession:
    path = export(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def prefill_inputs(model: Transformer, rows: list[list[int]]) -> tuple[torch.Tensor, ...]:
    """Left-padded prompts with an empty cache, as the server builds them."""
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, width - len(row):] = torch.tensor(row)
        positions[i, width - len(row):] = torch.arange(len(row))
        mask[i, width - len(row):] = 1
    return (tokens, positions, mask, *model.empty_cache(len(rows)))


def torch_outputs(model: Transformer, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in model(*inputs)]


def full_recompute_logits(model: Transformer, row: list[int]) -> np.ndarray:
    """Logits after the last token from the training forward: no cache, no padding."""
    with torch.no_grad():
        return model.forward_train(torch.tensor([row]))[0, -1].numpy()


def test_prefill_with_empty_cache_matches_torch(model, session):
    inputs = prefill_inputs(model, [[1, 5, 9, 3, 7, 2]])
    expected, got = torch_outputs(model, inputs), run_onnx(session, inputs)
    assert got[1].shape == (1, 2, 4, 6, 8)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=ATOL)
    np.testing.assert_allclose(got[0][0], full_recompute_logits(model, [1, 5, 9, 3, 7, 2]),
                               atol=ATOL)


def test_one_cached_decode_step_matches_torch_and_recompute(model, session):
    row = [1, 4, 8, 15, 16, 23]
    _, keys, values = run_onnx(session, prefill_inputs(model, [row]))
    step = (torch.tensor([[42 % VOCAB]]), torch.tensor([[len(row)]]),
            torch.ones(1, len(row) + 1, dtype=torch.long),
            torch.from_numpy(keys), torch.from_numpy(values))
    expected, got = torch_outputs(model, step), run_onnx(session, step)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=ATOL)
    assert got[1].shape[3] == len(row) + 1
    np.testing.assert_allclose(got[0][0], full_recompute_logits(model, [*row, 42 % VOCAB]),
                               atol=ATOL)


def test_left_padded_batch_rows_equal_their_unbatched_runs(model, session):
    short, long = [1, 7, 3], [1, 2, 11, 5, 19, 6, 8]
    batched = run_onnx(session, prefill_inputs(model, [short, long]))
    for index, row in enumerate((short, long)):
        alone = run_onnx(session, prefill_inputs(model, [row]))
        np.testing.assert_allclose(batched[0][index], alone[0][0], atol=ATOL)
    # A decode step on the padded cache still gives each row its own answer.
    mask = prefill_inputs(model, [short, long])[2]
    step = (torch.tensor([[9], [9]]), torch.tensor([[len(short)], [len(long)]]),
            torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1),
            torch.from_numpy(batched[1]), torch.from_numpy(batched[2]))
    logits = run_onnx(session, step)[0]
    np.testing.assert_allclose(logits[0], full_recompute_logits(model, [*short, 9]), atol=ATOL)
    np.testing.assert_allclose(logits[1], full_recompute_logits(model, [*long, 9]), atol=ATOL)
    np.testing.assert_allclose(logits, torch_outputs(model, step)[0], atol=ATOL)


def test_greedy_decode_with_cache_equals_full_recompute(model, session):
    prompt = [1, 3, 5]
    logits, keys, values = run_onnx(session, prefill_inputs(model, [prompt]))
    cached = list(prompt)
    for _ in range(12):
        token = int(np.argmax(logits[0]))
        cached.append(token)
        step = (torch.tensor([[token]]), torch.tensor([[len(cached) - 1]]),
                torch.ones(1, len(cached), dtype=torch.long),
                torch.from_numpy(keys), torch.from_numpy(values))
        logits, keys, values = run_onnx(session, step)
    recomputed = list(prompt)
    for _ in range(12):
        recomputed.append(int(np.argmax(full_recompute_logits(model, recomputed))))
    assert cached == recomputed
    np.testing.assert_allclose(logits[0], full_recompute_logits(model, cached), atol=ATOL)
