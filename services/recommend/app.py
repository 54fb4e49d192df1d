"""Wires the recommend service: event log, catalog client, model store, servicer."""

from __future__ import annotations

import asyncio
import pathlib

from threadpoolctl import threadpool_limits

from cadenza.kit.server import App, Binding
from cadenza.recommend.v1 import recommend_pb2, recommend_pb2_grpc
from services.recommend import convert
from services.recommend.catalog import RetrievalCatalog
from services.recommend.content import ContentRefresher
from services.recommend.event_log import EventLog
from services.recommend.event_store import SqliteEventStore
from services.recommend.events import EventStore
from services.recommend.model import ModelStore
from services.recommend.model_cache import CachedModelStore
from services.recommend.model_store import QdrantModelStore
from services.recommend.recommender import Recommender, RecommendQuery
from services.recommend.servicer import RecommendServicer
from services.recommend.settings import RecommendSettings
from services.recommend.training import Trainer
from services.recommend.warm import ListWarmer

SERVICE = "cadenza.recommend.v1.RecommendService"


def _default_query(user_id: str) -> RecommendQuery:
    """The query of a Recommend call that sends only the user id (what warming computes
    ahead: the same cache key as that call)."""
    return convert.recommend_query_from_pb(recommend_pb2.RecommendRequest(user_id=user_id))


def _open(settings: RecommendSettings) -> tuple[EventStore, ModelStore]:
    """The stores the settings name: SQLite events, Qdrant (a server when qdrant_url is
    set, else embedded) for the model, its item arrays in memory unless turned off."""
    data = pathlib.Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    models = QdrantModelStore.open(str(data / "qdrant"), settings.qdrant_url,
                                   settings.qdrant_api_key)
    return (SqliteEventStore.open(data / "events.sqlite3"),
            CachedModelStore(models, models) if settings.model_in_memory else models)


async def build_recommend(settings: RecommendSettings) -> App:
    """The recommend service's bindings, warm-up (load the model, start the schedule)
    and shutdown."""
    # Serving multiplies vectors by 17k-row matrices on every call. OpenBLAS threads make
    # that 30x slower on a busy 2-core node (0.16 ms vs 5 ms measured for the ALS
    # factors) as they spin for each other; training's dense inverse loses less.
    threadpool_limits(1, "blas")
    # Opening the stores blocks; keep it off the event loop.
    store, models = await asyncio.to_thread(_open, settings)
    catalog = RetrievalCatalog(settings.retrieval_address)
    events = EventLog(store, catalog, settings.max_clock_skew_s,
                      cached_histories=settings.cached_histories)
    content = (ContentRefresher(catalog, settings.content_refresh_s)
               if settings.content_in_memory else None)
    trainer = Trainer(store, models, settings.default_algorithm, settings.retrain_interval_s,
                      holdout_users=settings.holdout_users,
                      published=None if content is None else content.refresh_soon)
    recommender = Recommender(events, catalog, models, content, settings.cached_lists)
    servicer = RecommendServicer(events, recommender, trainer)
    warmer = ListWarmer(recommender, events, _default_query, settings.warm_lists,
                        settings.warm_check_s, settings.warm_share)
    if settings.refresh_after_events:
        events.on_stored(warmer.touched)

    async def warmup() -> None:
        await trainer.start()
        if content is not None:
            await content.start()
        await warmer.start()

    async def close() -> None:
        await warmer.stop()
        if content is not None:
            await content.stop()
        await trainer.stop()
        await catalog.close()
        await events.close()
        await asyncio.to_thread(models.close)

    return App(bindings=[Binding(SERVICE, lambda server: recommend_pb2_grpc.
                                 add_RecommendServiceServicer_to_server(servicer, server))],
               warmup=warmup, close=close)
