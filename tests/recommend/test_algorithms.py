"""The neighbour similarities the item-kNN member can be fitted with."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from services.recommend import algorithms, fitting
from services.recommend.events import Engagement
from services.recommend.model import ITEMKNN

# Three listeners, four items: item 0 is the hit (everyone), item 3 the tail (one fan).
PLAYS = np.array([[2.0, 1.0, 0.0, 0.0],
                  [1.0, 3.0, 1.0, 0.0],
                  [4.0, 0.0, 1.0, 1.0]])


def walk_by_hand(x: np.ndarray, j: int, k: int) -> float:
    """P(item j -> user u -> item k), summed over users, from the definitions."""
    total = 0.0
    for u in range(x.shape[0]):
        to_user = x[u, j] / x[:, j].sum()
        to_item = x[u, k] / x[u].sum()
        total += to_user * to_item
    return total


def test_rp3beta_without_its_exponents_is_the_three_step_walk() -> None:
    walk = algorithms.rp3beta_weights(sp.csr_matrix(PLAYS), alpha=1.0, beta=0.0)
    for j in range(4):
        for k in range(4):
            expected = 0.0 if j == k else walk_by_hand(PLAYS, j, k)
            assert walk[j, k] == pytest.approx(expected, rel=1e-5), (j, k)


def test_rp3beta_beta_divides_by_each_items_listeners() -> None:
    plain = algorithms.rp3beta_weights(sp.csr_matrix(PLAYS), alpha=1.0, beta=0.0)
    damped = algorithms.rp3beta_weights(sp.csr_matrix(PLAYS), alpha=1.0, beta=0.5)
    listeners = np.array([3, 2, 2, 1])
    np.testing.assert_allclose(damped, plain / np.sqrt(listeners)[None, :], rtol=1e-5)
    # From item 2 the walk reaches the hit more than the tail item; beta narrows that.
    assert damped[2, 0] / damped[2, 3] < plain[2, 0] / plain[2, 3]


def test_rp3beta_alpha_sharpens_each_step() -> None:
    x = sp.csr_matrix(PLAYS)
    sharp = algorithms.rp3beta_weights(x, alpha=2.0, beta=0.0)
    squared = np.zeros((4, 4))
    for j in range(4):
        for k in range(4):
            if j != k:
                squared[j, k] = sum((PLAYS[u, j] / PLAYS[:, j].sum()) ** 2
                                    * (PLAYS[u, k] / PLAYS[u].sum()) ** 2 for u in range(3))
    np.testing.assert_allclose(sharp, squared, rtol=1e-5)


def test_negative_evidence_takes_no_step_of_the_walk() -> None:
    with_dislike = PLAYS.copy()
    with_dislike[0, 3] = -5.0
    walk = algorithms.rp3beta_weights(sp.csr_matrix(with_dislike), beta=0.0)
    np.testing.assert_allclose(walk, algorithms.rp3beta_weights(sp.csr_matrix(PLAYS),
                                                                beta=0.0), rtol=1e-6)


def engagements() -> list[Engagement]:
    return [Engagement(f"u{u}", f"t{i}", float(PLAYS[u, i]), False, 0.0)
            for u in range(3) for i in range(4) if PLAYS[u, i]]


def test_the_fit_uses_the_chosen_similarity_for_item_knn() -> None:
    params = dataclasses.replace(fitting.DEFAULT_PARAMS, min_item_users=1, row_entries=4)
    cosine = fitting.fit(engagements(), "itemknn", "v1",
                         dataclasses.replace(params, knn_similarity="cosine"))
    walk = fitting.fit(engagements(), "itemknn", "v2",
                       dataclasses.replace(params, knn_similarity="rp3beta", rp3_beta=0.0))
    matrix = fitting.build_matrix(engagements())
    expected = algorithms.rp3beta_weights(matrix.confidence, 1.0, 0.0)
    np.testing.assert_allclose(walk.neighbours[ITEMKNN].toarray(), expected, rtol=1e-5)
    assert not np.allclose(cosine.neighbours[ITEMKNN].toarray(), expected)


def test_an_unknown_similarity_is_refused_by_name() -> None:
    params = dataclasses.replace(fitting.DEFAULT_PARAMS, min_item_users=1,
                                 knn_similarity="jaccard")
    with pytest.raises(ValueError, match=r"jaccard.*cosine or rp3beta"):
        fitting.fit(engagements(), "itemknn", "v1", params)
