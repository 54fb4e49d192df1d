"""Metrics the session mesh cannot move on its own: refusals at the gateway's edge, and the
hold-out figure behind cadenza_recommend_model_quality."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from gateway.access import Access
from gateway.metering import Metering, UsageWriter
from gateway.quota import open_policy
from gateway.store import Quota
from gateway.store.sql import open_store
from services.recommend import metrics, quality
from services.recommend.event_store import SqliteEventStore
from services.recommend.events import Engagement, Event, EventKind
from services.recommend.model_store import QdrantModelStore
from services.recommend.training import Trainer
from tests.support.tenants import add_key, add_tenant, bearer


@dataclass(frozen=True)
class Call(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def refused(principal: str, code: str) -> float:
    return REGISTRY.get_sample_value("cadenza_gateway_rejected_total",
                                     {"principal": principal, "grpc_code": code}) or 0.0


async def test_gateway_counts_calls_refused_for_a_bad_key_or_the_quota(
        tmp_path: pathlib.Path) -> None:
    store = await open_store(str(tmp_path / "gateway.db"))
    await add_tenant(store, "alice", [Quota("*", requests_per_minute=1)])
    _, secret = await add_key(store, "alice")
    writer = UsageWriter(store)
    writer.start()
    access = Access()
    access.attach(store, await open_policy(""), Metering(writer), required=True)
    interceptor = access.interceptors()[0]

    async def forward(details: grpc.HandlerCallDetails) -> str:
        return "forwarded"

    method = "/cadenza.retrieval.v1.RetrievalService/GetTrack"
    alice = bearer(secret)
    before = refused("unknown", "UNAUTHENTICATED"), refused("alice", "RESOURCE_EXHAUSTED")
    assert await interceptor.intercept_service(forward, Call(method, alice)) == "forwarded"
    await interceptor.intercept_service(forward, Call(method, (("authorization", "Bearer no"),)))
    await interceptor.intercept_service(forward, Call(method, alice))  # over the quota now
    assert refused("unknown", "UNAUTHENTICATED") == before[0] + 1
    assert refused("alice", "RESOURCE_EXHAUSTED") == before[1] + 1
    await writer.close()
    await store.close()


def two_tastes(users: int = 40, items: int = 60, per_user: int = 8) -> list[Engagement]:
    """Even users like even tracks, odd users odd ones."""
    rng = np.random.default_rng(0)
    return [Engagement(f"user-{u}", f"track-{i}", float(rng.integers(1, 9)), False, 0.0)
            for u in range(users)
            for i in rng.choice(range(u % 2, items, 2), size=per_user, replace=False)]


@pytest.mark.parametrize("algorithm", ["ensemble", "ease"])
def test_holdout_quality_finds_the_structure_a_random_ranker_misses(algorithm: str) -> None:
    figures = quality.holdout_quality(two_tastes(), algorithm)
    assert figures["users"] == 40
    # 2 of each user's 8 tracks are hidden among 52 unseen ones: a random top 10 finds
    # 10/52 of them (0.19); knowing the taste group alone gives about 10/24 (0.42). Were
    # the hidden tracks leaked into training, they would be excluded as seen (recall 0).
    assert 0.3 < figures["recall_at_10"] <= 1
    assert 0 < figures["ndcg_at_10"] <= 1


def test_holdout_quality_is_empty_without_enough_history() -> None:
    assert quality.holdout_quality(two_tastes(per_user=quality.MIN_ITEMS - 1), "ease") == {}


def gauge(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


@contextlib.asynccontextmanager
async def trainer_on_two_tastes(tmp_path: pathlib.Path,
                                **options: int) -> AsyncIterator[Trainer]:
    """A started Trainer (EASE) over an event store holding two_tastes() as plays."""
    store = SqliteEventStore.open(tmp_path / "events.sqlite3")
    store.add([Event(f"e-{e.user_id}-{e.track_id}", e.user_id, e.track_id, EventKind.PLAY,
                     time.time(), count=int(e.value)) for e in two_tastes()])
    models = QdrantModelStore.open(str(tmp_path / "qdrant"))
    trainer = Trainer(store, models, "ease", interval_s=0, **options)
    try:
        await trainer.start()
        yield trainer
    finally:
        await trainer.stop()
        models.close()
        store.close()


async def train_once(trainer: Trainer) -> None:
    await trainer.train()
    run = await asyncio.wait_for(trainer.wait(), 300)
    assert run is not None and run.state == "succeeded", run


async def test_a_training_run_publishes_its_quality_and_time(tmp_path: pathlib.Path) -> None:
    async with trainer_on_two_tastes(tmp_path) as trainer:
        started = time.time()
        await train_once(trainer)
        recall = gauge("cadenza_recommend_model_quality",
                       {"algorithm": "ease", "metric": "recall_at_10"})
        assert recall is not None and recall > 0.3
        assert gauge("cadenza_recommend_model_quality",
                     {"algorithm": "ease", "metric": "users"}) == 40
        published = gauge("cadenza_recommend_model_published_timestamp_seconds")
        assert published is not None and published >= started
        # A restart shows the serving model's figures again (they travel with the model).
        metrics.MODEL_QUALITY.clear()
        metrics.MODEL_PUBLISHED.set(0)
        await trainer.start()
        assert gauge("cadenza_recommend_model_quality",
                     {"algorithm": "ease", "metric": "recall_at_10"}) == recall
        assert gauge("cadenza_recommend_model_published_timestamp_seconds") >= started


def test_holdout_quality_samples_at_most_max_users() -> None:
    assert quality.holdout_quality(two_tastes(), "ease", max_users=10)["users"] == 10


async def test_holdout_users_zero_skips_the_extra_fit(tmp_path: pathlib.Path) -> None:
    async with trainer_on_two_tastes(tmp_path, holdout_users=0) as trainer:
        await train_once(trainer)
        serving = trainer.models.serving
        assert serving is not None and serving.manifest.run["quality"] == {}
        assert gauge("cadenza_recommend_model_quality",
                     {"algorithm": "ease", "metric": "recall_at_10"}) is None
