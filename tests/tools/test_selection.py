"""The rules `make eval-recs` selects by (tools/lastfm/selection.py), without the data."""

from __future__ import annotations

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
