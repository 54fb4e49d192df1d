"""The committed served model folder, models/generate/cadenza-poly, keeps the contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from services.generate.music.originality import OriginalityIndex
from services.generate.music.tokens import SERVED_VOCABULARY, STEPS_PER_QUARTER

FOLDER = Path(__file__).resolve().parents[2] / "models/generate/cadenza-poly"


@pytest.fixture(scope="module")
def model_json() -> dict:
    return json.loads((FOLDER / "model.json").read_text())


def test_model_json_has_the_contract_fields_and_the_served_vocabulary(model_json) -> None:
    assert model_json["name"] == "cadenza-poly"
    assert model_json["vocabulary"] == SERVED_VOCABULARY.to_json()
    assert model_json["steps_per_quarter"] == STEPS_PER_QUARTER
    assert model_json["n_heads"] * model_json["head_dim"] == model_json["d_model"]
    card = model_json["card"]
    assert card["modes"] == ["FROM_SCRATCH", "CONTINUE", "HARMONIZE"]
    assert card["parameters"] > 0 and card["training_time_s"] > 0
    assert card["metrics"]["valid_nll_per_token"] > 0 and card["licence"]


def test_the_onnx_graph_decodes_with_a_cache(model_json) -> None:
    session = onnxruntime.InferenceSession(str(FOLDER / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    vocab = SERVED_VOCABULARY
    layers, heads, dim = model_json["n_layers"], model_json["n_heads"], model_json["head_dim"]
    preamble = [vocab.BOS, vocab.style("chorale"), vocab.key(7, False), vocab.time_signature("4/4")]
    empty = np.zeros((1, layers, heads, 0, dim), np.float32)
    logits, keys, values = session.run(None, {
        "tokens": np.array([preamble]), "positions": np.arange(4)[None],
        "attention_mask": np.ones((1, 4), np.int64), "past_keys": empty, "past_values": empty})
    assert logits.shape == (1, vocab.size) and keys.shape == (1, layers, heads, 4, dim)
    # The trained model opens a piece with a bar line far more often than with silence.
    assert logits[0, vocab.BAR] > logits[0, vocab.STEP]
    step, _, _ = session.run(None, {
        "tokens": np.array([[vocab.BAR]]), "positions": np.array([[4]]),
        "attention_mask": np.ones((1, 5), np.int64), "past_keys": keys, "past_values": values})
    assert np.isfinite(step).all()


def test_originality_corpus_holds_training_voices_and_no_held_out_chorale(model_json) -> None:
    with np.load(FOLDER / "originality.npz") as data:
        names = [str(n) for n in data["names"]]
        assert data["notes"].dtype == np.int32 and data["notes"].shape[1] == 2
        assert data["offsets"][-1] == len(data["notes"]) and len(data["offsets"]) == len(names) + 1
        assert (data["notes"][:, 1] > 0).all()
    assert any(name.startswith("bach/") for name in names)
    assert any(name.startswith("essenFolksong/") for name in names)
    # Sequence names are "<piece> <part>"; no piece matching JSB valid/test is among them
    # (bwv269, for one, is a JSB valid/test chorale).
    held_out = set(model_json["training"]["data"]["held_out_jsb_names"])
    assert "bach/bwv269" in held_out
    pieces = {name[:name.index(" ")] for name in names}
    assert not pieces & held_out
    OriginalityIndex.load(FOLDER / "originality.npz")
