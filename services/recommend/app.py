"""Wires the recommend service: event log, catalog client, model store, servicer."""

from __future__ import annotations

import asyncio
import pathlib

from cadenza.kit.server import App, Binding
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend.catalog import RetrievalCatalog
from services.recommend.event_log import EventLog
from services.recommend.event_store import SqliteEventStore
from services.recommend.events import EventStore
from services.recommend.model import ModelStore
from services.recommend.model_store import QdrantModelStore
from services.recommend.recommender import Recommender
from services.recommend.servicer import RecommendServicer
from services.recommend.settings import RecommendSettings
from services.recommend.training import Trainer

SERVICE = "cadenza.recommend.v1.RecommendService"


def _open(settings: RecommendSettings) -> tuple[EventStore, ModelStore]:
    """The stores the settings name: SQLite events, Qdrant (a server when qdrant_url is
    set, else embedded) for the model."""
    data = pathlib.Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    return (SqliteEventStore.open(data / "events.sqlite3"),
            QdrantModelStore.open(str(data / "qdrant"), settings.qdrant_url,
                                  settings.qdrant_api_key))


async def build_recommend(settings: RecommendSettings) -> App:
    """The recommend service's bindings, warm-up (load the model, start the schedule)
    and shutdown."""
    # Opening the stores blocks; keep it off the event loop.
    store, models = await asyncio.to_thread(_open, settings)
    catalog = RetrievalCatalog(settings.retrieval_address)
    events = EventLog(store, catalog, settings.max_clock_skew_s)
    trainer = Trainer(store, models, settings.default_algorithm, settings.retrain_interval_s,
                      holdout_users=settings.holdout_users)
    recommender = Recommender(events, catalog, models)
    servicer = RecommendServicer(events, recommender, trainer)

    async def warmup() -> None:
        await trainer.start()

    async def close() -> None:
        await trainer.stop()
        await catalog.close()
        await events.close()
        await asyncio.to_thread(models.close)

    return App(bindings=[Binding(SERVICE, lambda server: recommend_pb2_grpc.
                                 add_RecommendServiceServicer_to_server(servicer, server))],
               warmup=warmup, close=close)
