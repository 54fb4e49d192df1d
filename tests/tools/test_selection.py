"""The rules `make eval-recs` selects by (tools/lastfm/selection.py), without the data."""

from __future__ import annotations

import dataclasses

import numpy as np

from services.recommend import fitting
from services.recommend.events import Engagement
from services.recommend.model import EASE, ITEMKNN
from services.recommend.offline_eval import split_per_user
from tools.lastfm import selection
from tools.lastfm.eval_recs import VALIDATION_SEED_OFFSET


def _candidate(ndcg: float, coverage: float) -> selection.Candidate:
    return selection.Candidate(selection.BASE, {}, {}, {"nDCG@10": ndcg,
                                                        "coverage": coverage})


def test_the_pick_is_the_best_ndcg_with_enough_coverage() -> None:
    narrow, covered, wide = _candidate(0.19, 0.09), _candidate(0.18, 0.10), _candidate(0.17, 0.2)
    assert selection.pick([narrow, covered, wide]) is covered


def test_without_enough_coverage_the_pick_is_the_best_ndcg() -> None:
    low, high = _candidate(0.17, 0.05), _candidate(0.18, 0.06)
    assert selection.pick([low, high]) is high


def test_every_grid_point_is_a_distinct_fit_without_the_penalty() -> None:
    # _variant finds a penalty's model by the fit without it: each PARAMS entry is one fit.
    assert len(set(selection.PARAMS)) == len(selection.PARAMS)
    assert selection.PARAMS[0] == selection.BASE
    assert all(p.popularity_penalty == selection.BASE.popularity_penalty
               for p in selection.PARAMS)
    assert all(p > 0 for p in selection.PENALTIES)


def test_the_validation_split_holds_nothing_of_the_test_split() -> None:
    plays = {f"u{u}": {f"a{(u * 3 + i) % 40}": float(i + 1) for i in range(12)}
             for u in range(30)}
    outer = split_per_user(plays, seed=2011)
    inner = split_per_user(outer.train, seed=2011 + VALIDATION_SEED_OFFSET)
    for user, held in outer.test.items():
        seen = set(inner.train[user]) | inner.test.get(user, set())
        assert not seen & held
        assert seen == set(outer.train[user])


def test_a_similarity_candidate_is_the_full_fit_with_that_similarity() -> None:
    rng = np.random.default_rng(3)
    engagements = [Engagement(f"u{u}", f"t{i}", float(rng.integers(1, 20)), False, 0.0)
                   for u in range(30) for i in rng.choice(40, 8, replace=False)]
    members = {"als": 0.4, EASE: 0.4, ITEMKNN: 0.2}
    cosine = fitting.fit(engagements, "ensemble", "val", selection.BASE, members)
    rp3 = dataclasses.replace(selection.BASE, knn_similarity="rp3beta", rp3_beta=0.3)
    swapped = selection.knn_swapped(cosine, engagements, rp3)
    full = fitting.fit(engagements, "ensemble", "val", rp3, members)
    assert (swapped.neighbours[ITEMKNN] != full.neighbours[ITEMKNN]).nnz == 0
    assert (swapped.neighbours[ITEMKNN] != cosine.neighbours[ITEMKNN]).nnz > 0
    assert swapped.neighbours[EASE] is cosine.neighbours[EASE]
    assert swapped.manifest == cosine.manifest
