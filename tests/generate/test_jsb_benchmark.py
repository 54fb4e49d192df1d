"""The committed JSB benchmark model scores the test split to the figure it reports."""

from __future__ import annotations

import json

import pytest
import torch

from training.music.jsb import (
    DEFAULT_CHECKPOINT,
    GOAL_NLL,
    MIXTURE_FILE,
    frame_nll,
    load_scorer,
    load_splits,
)
from training.music.mixture import Mixture


@pytest.fixture(scope="module")
def committed() -> tuple[Mixture, dict]:
    torch.set_num_threads(1)
    scorer, _ = load_scorer(DEFAULT_CHECKPOINT)
    assert isinstance(scorer, Mixture)
    return scorer, json.loads((DEFAULT_CHECKPOINT / "results.json").read_text())


def test_the_mixture_is_what_mixture_json_says(committed):
    scorer, results = committed
    spec = json.loads((DEFAULT_CHECKPOINT / MIXTURE_FILE).read_text())
    assert len(scorer.members) == sum(len(e["shifts"]) for e in spec["members"]) == 14
    assert sum(m.weight for m in scorer.members) == pytest.approx(1.0)
    assert results["members"] == spec["members"]


def test_committed_mixture_reproduces_its_reported_test_nll(committed):
    scorer, results = committed
    test = frame_nll(scorer, load_splits()["test"])
    assert test == pytest.approx(results["test_nll"], abs=5e-4)
    assert test <= GOAL_NLL
