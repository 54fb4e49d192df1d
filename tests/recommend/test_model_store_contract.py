"""One contract for the ModelStore port, run against every implementation.

Qdrant embedded on disk (the default) and in memory, the in-memory store, and a Qdrant
server too when QDRANT_URL is set. Reopening is checked where the store is durable.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio
import scipy.sparse as sp
from qdrant_client import QdrantClient

from services.recommend.memory_model_store import MemoryModelStore
from services.recommend.model import (
    ALS,
    EASE,
    ITEMKNN,
    Manifest,
    ModelStore,
    PublishedModel,
    ServingModel,
)
from services.recommend.model_cache import CachedModelStore
from services.recommend.model_store import ITEMS, USERS, QdrantModelStore


def _server(path: pathlib.Path) -> QdrantModelStore:
    """A server store with no recs_* collections or aliases left from earlier runs."""
    opened = QdrantModelStore.open("", os.environ["QDRANT_URL"])
    client = opened.client
    for alias in client.get_aliases().aliases:
        if alias.alias_name in (ITEMS, USERS):
            client.delete_alias(alias.alias_name)
    for collection in client.get_collections().collections:
        if collection.name.startswith((f"{ITEMS}_", f"{USERS}_")):
            client.delete_collection(collection.name)
    return opened


def _cached(store: QdrantModelStore) -> CachedModelStore:
    return CachedModelStore(store, store)


# name -> opener of a store at a path (the same path reopens the same store), durable?
IMPLEMENTATIONS: dict[str, tuple[Callable[[pathlib.Path], ModelStore], bool]] = {
    "qdrant-embedded-disk": (lambda path: QdrantModelStore.open(str(path)), True),
    "qdrant-embedded-memory": (
        lambda path: QdrantModelStore(QdrantClient(location=":memory:"), "qdrant-embedded"),
        False),
    "memory": (lambda path: MemoryModelStore(), False),
    # The service's default: Qdrant on disk with the serving version's items in memory.
    "qdrant-embedded-disk-cached": (lambda path: _cached(QdrantModelStore.open(str(path))),
                                    True),
    **({"qdrant-server": (_server, False)} if os.environ.get("QDRANT_URL") else {}),
}
DURABLE = [name for name, (_, durable) in IMPLEMENTATIONS.items() if durable]

N_ITEMS, K = 12, 4
USER_IDS = ["ann", "bob", "cy", "dee", "eve", "zero"]  # "zero" has an all-zero factor


def model(version: str, seed: int = 0, *, members: tuple[str, ...] = (ALS, EASE, ITEMKNN),
          users: list[str] | None = None) -> PublishedModel:
    """A small model with random factors and sparse rows (some items without a row)."""
    rng = np.random.default_rng(seed)
    user_ids = USER_IDS if users is None else users
    item_factors = rng.normal(size=(N_ITEMS, K)).astype(np.float32)
    user_factors = rng.normal(size=(len(user_ids), K)).astype(np.float32)
    if "zero" in user_ids:
        user_factors[user_ids.index("zero")] = 0.0
    neighbours = {}
    for m in members:
        if m == ALS:
            continue
        dense = rng.uniform(0.1, 1.0, size=(N_ITEMS, N_ITEMS)) * (
            rng.uniform(size=(N_ITEMS, N_ITEMS)) < 0.4)
        np.fill_diagonal(dense, 0.0)
        dense[[2, 7]] = 0.0  # items 2 and 7 have no row
        neighbours[m] = sp.csr_matrix(dense.astype(np.float32))
    als = ALS in members
    manifest = Manifest(
        version=version, algorithm="ensemble" if len(members) > 1 else members[0],
        members={m: round(1 / len(members), 3) for m in members},
        track_ids=[f"track-{i}" for i in range(N_ITEMS)],
        popularity=[int(p) for p in rng.integers(0, 50, size=N_ITEMS)],
        als_gram=(item_factors.T @ item_factors).astype(float).tolist() if als else None,
        als_regularization=0.05, als_alpha=1.0,
        run={"users": len(user_ids), "items": N_ITEMS, "training_run": {"run_id": version}})
    return PublishedModel(manifest, item_factors if als else None, user_ids,
                          user_factors if als else None, neighbours)


@pytest.fixture(params=list(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def store(implementation: str, tmp_path: pathlib.Path) -> AsyncIterator[ModelStore]:
    opened = IMPLEMENTATIONS[implementation][0](tmp_path / "qdrant")
    await opened.load()
    yield opened
    opened.close()


def serving(store: ModelStore) -> ServingModel:
    assert store.serving is not None
    return store.serving


async def test_an_empty_store_serves_nothing(store: ModelStore) -> None:
    assert store.serving is None
    await store.load()
    assert store.serving is None


async def test_publishing_serves_the_manifest_as_given(store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    now = serving(store)
    assert now.manifest == published.manifest
    assert now.index == {f"track-{i}": i for i in range(N_ITEMS)}
    popularity = published.manifest.popularity
    assert sorted(now.by_popularity) == list(range(N_ITEMS))
    assert [popularity[i] for i in now.by_popularity] == sorted(popularity, reverse=True)
    await store.load()  # loading again serves the same version
    assert serving(store).manifest == published.manifest


async def test_item_rows_round_trip_and_leave_out_items_without_one(
        store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    for member in (EASE, ITEMKNN):
        rows = await store.item_rows(serving(store), member, [0, 2, 5, 7, 11, 99])
        assert set(rows) == {0, 5, 11}  # 2 and 7 have no row; 99 is no item
        for i, (indices, values) in rows.items():
            expected = published.neighbours[member].getrow(i)
            order = np.argsort(indices)
            assert indices[order].tolist() == expected.indices.tolist()
            assert np.allclose(values[order], expected.data, rtol=1e-6)


async def test_arrays_when_held_are_what_the_item_reads_return(store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    arrays = store.arrays(serving(store))
    if arrays is None:
        return  # this store answers the reads from storage
    assert arrays.item_factors is not None and published.item_factors is not None
    factors = await store.item_factors(serving(store), list(range(N_ITEMS)))
    assert np.array_equal(np.stack([factors[i] for i in range(N_ITEMS)]),
                          arrays.item_factors.astype(np.float32))
    for member in (EASE, ITEMKNN):
        rows = await store.item_rows(serving(store), member, list(range(N_ITEMS)))
        held = arrays.neighbours[member]
        for i in range(N_ITEMS):
            start, end = held.indptr[i], held.indptr[i + 1]
            assert (i in rows) == (end > start)
            if i in rows:
                assert rows[i][0].tolist() == held.indices[start:end].tolist()
                assert rows[i][1].tolist() == held.data[start:end].astype(np.float64).tolist()


async def test_item_factors_round_trip_as_float32(store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    assert published.item_factors is not None
    factors = await store.item_factors(serving(store), [1, 4, 99])
    assert set(factors) == {1, 4}
    for i, factor in factors.items():
        assert factor.dtype == np.float32
        assert np.allclose(factor, published.item_factors[i], rtol=1e-6)


async def test_nearest_items_rank_by_dot_product(store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    assert published.item_factors is not None
    query = np.random.default_rng(5).normal(size=K).astype(np.float32)
    found = await store.nearest_items(serving(store), query, 5)
    brute = published.item_factors @ query
    assert [i for i, _ in found] == np.argsort(-brute)[:5].tolist()
    assert np.allclose([s for _, s in found], np.sort(brute)[::-1][:5], atol=1e-5)
    everything = await store.nearest_items(serving(store), query, 100)
    assert len(everything) == N_ITEMS


async def test_user_factors_round_trip_and_unknown_users_have_none(
        store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    assert published.user_factors is not None
    factor = await store.user_factor(serving(store), "bob")
    assert factor is not None and factor.dtype == np.float32
    trained = published.user_factors[USER_IDS.index("bob")]
    assert np.allclose(factor, trained / np.linalg.norm(trained), atol=1e-6)  # the direction
    assert await store.user_factor(serving(store), "nobody") is None
    assert await store.user_factor(serving(store), "zero") is None  # zero factors: not kept


async def test_nearest_users_rank_by_cosine_without_the_excluded(store: ModelStore) -> None:
    published = model("v1")
    await store.publish(published)
    assert published.user_factors is not None
    query = published.user_factors[0]  # ann's own factor
    found = await store.nearest_users(serving(store), query, 10, exclude="ann")
    kept = [u for u in USER_IDS if u not in ("ann", "zero")]
    factors = np.stack([published.user_factors[USER_IDS.index(u)] for u in kept])
    cosine = factors @ query / np.linalg.norm(factors, axis=1) / np.linalg.norm(query)
    assert [u for u, _ in found] == [kept[i] for i in np.argsort(-cosine)]
    assert np.allclose([s for _, s in found], np.sort(cosine)[::-1], atol=1e-5)
    top = await store.nearest_users(serving(store), query, 2, exclude="nobody")
    assert top[0][0] == "ann" and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(top) == 2


async def test_a_neighbour_only_model_round_trips_without_factors(store: ModelStore) -> None:
    published = model("v1", members=(EASE,))
    await store.publish(published)
    now = serving(store)
    assert now.manifest == published.manifest and now.manifest.als_gram is None
    rows = await store.item_rows(now, EASE, list(range(N_ITEMS)))
    assert set(rows) == set(range(N_ITEMS)) - {2, 7}


async def test_a_new_version_serves_and_the_one_before_stays_readable(
        store: ModelStore) -> None:
    await store.publish(model("v1", seed=1))
    await store.publish(model("v2", seed=2))
    in_flight = serving(store)  # a request that started on v2
    newer = model("v3", seed=3)
    await store.publish(newer)
    assert serving(store).manifest.version == "v3"
    assert in_flight.manifest.version == "v2"
    old_rows = await store.item_rows(in_flight, EASE, [0])
    assert np.allclose(sorted(old_rows[0][1]), sorted(model("v2", seed=2).neighbours[EASE]
                                                      .getrow(0).data), rtol=1e-6)
    new_rows = await store.item_rows(serving(store), EASE, [0])
    assert np.allclose(sorted(new_rows[0][1]), sorted(newer.neighbours[EASE].getrow(0).data),
                       rtol=1e-6)


async def test_a_failed_publish_leaves_the_serving_version(store: ModelStore) -> None:
    await store.publish(model("v1"))
    broken = model("v2", users=["ann", "bob"])
    assert broken.user_factors is not None
    bad = PublishedModel(broken.manifest, broken.item_factors, ["ann"],  # 1 id, 2 factors
                         broken.user_factors, broken.neighbours)
    with pytest.raises(ValueError):
        await store.publish(bad)
    assert serving(store).manifest.version == "v1"
    await store.load()
    assert serving(store).manifest.version == "v1"
    assert len(await store.item_rows(serving(store), EASE, [0, 1])) == 2
    await store.publish(model("v3"))  # and publishing works after it
    assert serving(store).manifest.version == "v3"


@pytest.mark.parametrize("durable", DURABLE)
async def test_a_durable_store_serves_the_latest_version_after_reopening(
        durable: str, tmp_path: pathlib.Path) -> None:
    opener = IMPLEMENTATIONS[durable][0]
    first = opener(tmp_path / "qdrant")
    await first.load()
    await first.publish(model("v1", seed=1))
    latest = model("v2", seed=2)
    await first.publish(latest)
    first.close()
    again = opener(tmp_path / "qdrant")
    try:
        assert again.serving is None  # nothing serves before load
        await again.load()
        now = serving(again)
        assert now.manifest == latest.manifest
        assert latest.item_factors is not None
        factors = await again.item_factors(now, [3])
        assert np.allclose(factors[3], latest.item_factors[3], rtol=1e-6)
        rows = await again.item_rows(now, ITEMKNN, [0])
        assert np.allclose(sorted(rows[0][1]), sorted(latest.neighbours[ITEMKNN].getrow(0).data),
                           rtol=1e-6)
        assert await again.user_factor(now, "cy") is not None
    finally:
        again.close()
