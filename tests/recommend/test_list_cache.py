"""What the list cache keeps: the list itself, under a key that names the whole request,
in a form the garbage collector does not keep walking."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

from services.recommend.blend import Item
from services.recommend.catalog import Bounds, CandidateFilter, CatalogTrack
from services.recommend.recommender import Kept, RecommendQuery, RecommendResult, _query_key
from services.recommend.seeds import Seeds


def result(n: int) -> RecommendResult:
    items = [Item(CatalogTrack(f"t{i}", f"Title {i}", f"Artist {i % 3}", ("rock",), {}),
                  1.0 - i / 100, {"collaborative": 0.7 - i / 200, "popularity": 0.01},
                  f"because you like t{i + 50}") for i in range(n)]
    return RecommendResult(items, {"collaborative": 0.9, "popularity": 0.1}, "v7", False)


def test_a_kept_list_gives_back_the_list_and_its_prefixes() -> None:
    full = result(20)
    kept = Kept.of(full, 20)
    assert kept.first(20) == full
    assert kept.first(100) == full
    assert kept.first(5) == dataclasses.replace(full, items=full.items[:5])
    assert kept.serves(10) and not kept.serves(21)
    assert Kept.of(result(3), 20).serves(50)  # fewer than asked: there are no more
    mine = kept.first(20)
    mine.items.clear()
    mine.weights.clear()
    assert kept.first(20) == full  # a caller's own objects: the kept list is untouched


def test_a_kept_list_leaves_the_collectors_view() -> None:
    kept = Kept.of(result(20), 20)
    for _ in range(3):  # nested tuples are untracked one level per collection
        gc.collect()
    tracked = [name for name, value in vars(kept).items() if gc.is_tracked(value)]
    # Only the tuple of the catalogue's own track objects: everything else tracked is
    # walked by every full collection (25 objects a list, 20k lists: 100s of ms).
    assert tracked == ["tracks"]


def other(value: Any) -> Any:
    """A value of the same kind that differs."""
    if isinstance(value, Bounds):
        return Bounds(1.0, 2.0)
    if isinstance(value, tuple):
        return (*value, "x")
    if isinstance(value, str):
        return value + "x"
    raise AssertionError(f"no other value for {value!r}")


def test_the_cache_key_names_every_field_of_seeds_and_filter() -> None:
    base = RecommendQuery("u1", 20, {"collaborative": 1.0})
    changed = []
    for field in dataclasses.fields(Seeds):
        seeds = dataclasses.replace(base.seeds, **{field.name: other(
            getattr(base.seeds, field.name))})
        changed.append(dataclasses.replace(base, seeds=seeds))
    for field in dataclasses.fields(CandidateFilter):
        where = dataclasses.replace(base.where, **{field.name: other(
            getattr(base.where, field.name))})
        changed.append(dataclasses.replace(base, where=where))
    for bound in ("min", "max"):
        tempo = dataclasses.replace(base.where.tempo_bpm, **{bound: 90.0})
        changed.append(dataclasses.replace(base, where=dataclasses.replace(
            base.where, tempo_bpm=tempo)))
    keys = [_query_key(q) for q in [base, *changed]]
    assert len(set(keys)) == len(keys)
    assert _query_key(dataclasses.replace(base, limit=5)) == keys[0]  # served as a prefix
