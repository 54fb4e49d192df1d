"""Sampling: the mask is obeyed, top-k/top-p cut, the seed decides."""

from __future__ import annotations

import numpy as np

from services.generate.inference.sampling import Sampling, sample


def _draws(logits: np.ndarray, allowed: np.ndarray, sampling: Sampling, n: int = 2000) -> list[int]:
    rng = np.random.default_rng(7)
    return [sample(logits, allowed, sampling, rng) for _ in range(n)]


def test_never_picks_a_token_the_grammar_forbids() -> None:
    logits = np.array([10.0, 0.0, 0.0, 0.0])
    allowed = np.array([False, True, True, False])
    assert set(_draws(logits, allowed, Sampling())) == {1, 2}


def test_top_k_keeps_only_the_k_best() -> None:
    logits = np.array([3.0, 2.0, 1.0, 0.0])
    assert set(_draws(logits, np.ones(4, bool), Sampling(top_k=2))) == {0, 1}


def test_top_p_keeps_the_smallest_prefix_reaching_p() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert set(_draws(logits, np.ones(4, bool), Sampling(top_p=0.8))) == {0, 1}
    assert set(_draws(logits, np.ones(4, bool), Sampling(top_p=0.01))) == {0}


def test_low_temperature_is_nearly_greedy_and_high_is_flatter() -> None:
    logits = np.array([1.0, 0.0])
    cold = _draws(logits, np.ones(2, bool), Sampling(temperature=0.05))
    hot = _draws(logits, np.ones(2, bool), Sampling(temperature=10.0))
    assert cold.count(0) == len(cold)
    assert 0.4 < hot.count(0) / len(hot) < 0.65


def test_frequencies_follow_the_softmax() -> None:
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    draws = _draws(logits, np.ones(3, bool), Sampling(), n=20000)
    assert np.allclose(np.bincount(draws) / len(draws), [0.6, 0.3, 0.1], atol=0.015)


def test_same_generator_state_same_tokens() -> None:
    logits = np.random.default_rng(1).normal(size=50)
    allowed = np.ones(50, bool)
    assert _draws(logits, allowed, Sampling(), 50) == _draws(logits, allowed, Sampling(), 50)
