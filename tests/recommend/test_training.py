"""Training runs, the schedule and publishing: real SQLite log, embedded Qdrant on disk."""

from __future__ import annotations

import asyncio
import pathlib
import time

import numpy as np
import pytest

from services.recommend import fitting
from services.recommend.collaborative import collaborative, fold_in
from services.recommend.event_store import SqliteEventStore as EventStore
from services.recommend.events import Engagement, Event, EventKind
from services.recommend.model_store import ITEMS, USERS
from services.recommend.model_store import QdrantModelStore as ModelStore
from services.recommend.training import Trainer


def plays(n_users: int = 12, n_items: int = 20, seed: int = 0) -> list[Event]:
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        group = u % 2  # two tastes: even items or odd items
        for i in rng.choice(range(group, n_items, 2), size=6, replace=False):
            events.append(Event(f"e-{u}-{i}", f"user-{u}", f"track-{i}", EventKind.PLAY,
                                time.time(), count=int(rng.integers(1, 9))))
    return events


@pytest.fixture
def stores(tmp_path: pathlib.Path) -> tuple[EventStore, ModelStore]:
    store = EventStore.open(tmp_path / "events.sqlite3")
    store.add(plays())
    return store, ModelStore.open(str(tmp_path / "qdrant"))


async def test_the_schedule_trains_only_when_new_events_arrived(
        stores: tuple[EventStore, ModelStore]) -> None:
    store, models = stores
    trainer = Trainer(store, models, "ensemble", interval_s=0.2)
    await trainer.start()
    try:
        for _ in range(300):
            if trainer.latest is not None and trainer.latest.state == "succeeded":
                break
            await asyncio.sleep(0.1)
        first = trainer.latest
        assert first is not None and first.state == "succeeded", first
        assert models.serving is not None
        assert models.serving.manifest.version == first.model_version
        await asyncio.sleep(0.6)  # three intervals, nothing new: no new run
        assert trainer.latest is first
        store.add([Event("late", "user-0", "track-0", EventKind.LIKE, time.time())])
        for _ in range(300):
            if trainer.latest is not first and trainer.latest.state == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert trainer.latest is not first and trainer.latest.state == "succeeded"
    finally:
        await trainer.stop()
        models.close()
        store.close()


async def test_publishing_switches_versions_and_a_restart_serves_the_latest(
        tmp_path: pathlib.Path, stores: tuple[EventStore, ModelStore]) -> None:
    store, models = stores
    engagements = store.all_engagements()
    await models.publish(fitting.fit(engagements, "ensemble", "v1"))
    await models.publish(fitting.fit(engagements, "als", "v2"))
    await models.publish(fitting.fit(engagements, "ease", "v3"))
    names = {c.name for c in models.client.get_collections().collections}
    # The serving version and the one before it (for requests in flight); older ones go.
    assert names == {f"{ITEMS}_2", f"{USERS}_2", f"{ITEMS}_3", f"{USERS}_3"}
    assert models.serving is not None and models.serving.manifest.version == "v3"
    models.close()

    reopened = ModelStore.open(str(tmp_path / "qdrant"))
    try:
        await reopened.load()
        assert reopened.serving is not None
        assert reopened.serving.manifest.version == "v3"
        assert reopened.serving.items == f"{ITEMS}_3"
        names = {c.name for c in reopened.client.get_collections().collections}
        assert names == {f"{ITEMS}_3", f"{USERS}_3"}
    finally:
        reopened.close()
        store.close()


async def test_fold_in_matches_the_trained_user_factors(
        stores: tuple[EventStore, ModelStore]) -> None:
    store, models = stores
    engagements = store.all_engagements()
    model = fitting.fit(engagements, "als", "v1")
    await models.publish(model)
    assert models.serving is not None
    try:
        for user in ("user-0", "user-5"):
            mine = [e for e in engagements if e.user_id == user]
            folded = await fold_in(models, models.serving, mine)
            trained = model.user_factors[model.user_ids.index(user)]
            assert folded is not None
            cosine = folded @ trained / np.linalg.norm(folded) / np.linalg.norm(trained)
            assert cosine > 0.99
    finally:
        models.close()
        store.close()


def test_weights_by_kind_shape_the_matrix() -> None:
    engagements = [Engagement("a", "t1", 8.0, False, 0.0), Engagement("a", "t2", -8.0, True, 0.0),
                   Engagement("b", "t1", 1.0, False, 0.0)]
    matrix = fitting.build_matrix(engagements)
    dense = matrix.confidence.toarray()
    assert dense[0, 0] == pytest.approx(np.log1p(8.0))
    assert dense[0, 1] == pytest.approx(-np.log1p(8.0))  # negative evidence kept for ALS
    assert matrix.binary.toarray().tolist() == [[1.0, 0.0], [1.0, 0.0]]


async def test_the_popularity_penalty_is_stored_with_the_version_and_damps_hits(
        tmp_path: pathlib.Path, stores: tuple[EventStore, ModelStore]) -> None:
    store, models = stores
    engagements = store.all_engagements()
    plain = fitting.fit(engagements, "ease", "v1", fitting.Hyperparameters())
    params = fitting.Hyperparameters(popularity_penalty=0.5)
    await models.publish(fitting.fit(engagements, "ease", "v2", params))
    models.close()
    reopened = ModelStore.open(str(tmp_path / "qdrant"))
    try:
        await reopened.load()
        damped = reopened.serving
        assert damped is not None and damped.manifest.popularity_penalty == 0.5
        mine = [e for e in engagements if e.user_id == "user-0"]
        seen = {e.track_id for e in mine}
        with_penalty = await collaborative(reopened, damped, mine, seen)
        await reopened.publish(plain)
        undamped = reopened.serving
        assert undamped is not None and undamped.damping is None
        without = await collaborative(reopened, undamped, mine, seen)
        np.testing.assert_array_equal(with_penalty.items, without.items)
        listeners = np.asarray(plain.manifest.popularity)[without.items]
        # Hits lose against the tail, and the best score stays where it was.
        ratio = with_penalty.scores * (1 + 0.5 * np.log1p(listeners)) / without.scores
        np.testing.assert_allclose(ratio, ratio[0])
        assert with_penalty.scores.max() == pytest.approx(without.scores.max())
        assert len(set(listeners)) > 1  # hits and tail items both, so the order can move
    finally:
        reopened.close()
        store.close()
