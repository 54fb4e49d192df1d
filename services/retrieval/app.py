"""Wires the retrieval service: store, encoder, catalog, servicer."""

from __future__ import annotations

import asyncio
import logging
import pathlib

from cadenza.kit.server import App, Binding
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.catalog import Catalog, Limits
from services.retrieval.edge_store import EdgeStore
from services.retrieval.librosa_analyser import LibrosaAnalyser
from services.retrieval.qdrant_store import COLLECTION, QdrantStore
from services.retrieval.servicer import RetrievalServicer
from services.retrieval.settings import RetrievalSettings
from services.retrieval.store import VectorStore
from services.retrieval.text_embedding import TextEncoder

logger = logging.getLogger(__name__)
SERVICE = "cadenza.retrieval.v1.RetrievalService"


def open_store(settings: RetrievalSettings) -> VectorStore:
    """The server when QDRANT_URL is set, otherwise the embedded engine the settings name.

    A data_dir whose qdrant/ already holds a local-mode collection keeps local mode, so an
    existing catalog is never left behind silently; re-ingest (or remove qdrant/) to move
    it to Edge."""
    data = pathlib.Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    if settings.qdrant_url:
        return QdrantStore.open(f"{settings.data_dir}/qdrant", settings.qdrant_url,
                                settings.qdrant_api_key)
    local = data / "qdrant"
    if settings.embedded_engine == "edge" and (local / "collection" / COLLECTION).is_dir():
        logger.warning("%s holds a qdrant-client local-mode catalog: keeping local mode for "
                       "it (re-ingest into an empty data_dir to use Qdrant Edge)", local)
        return QdrantStore.open(str(local))
    if settings.embedded_engine == "local":
        return QdrantStore.open(str(local))
    edge = EdgeStore.open(str(data / "edge"))
    if settings.edge_optimize_on_start:
        edge.optimize()
    return edge


def _open(settings: RetrievalSettings) -> tuple[VectorStore, TextEncoder]:
    return open_store(settings), TextEncoder.load(pathlib.Path(settings.text_model_dir))


async def build_retrieval(settings: RetrievalSettings) -> App:
    """The retrieval service's App: its gRPC binding, warm-up and close."""
    # Opening the store and loading the model block; keep them off the event loop.
    store, encoder = await asyncio.to_thread(_open, settings)
    catalog = Catalog(store, encoder, LibrosaAnalyser(),
                      Limits(settings.max_upload_bytes, settings.max_audio_duration_s),
                      settings.compute_workers)
    servicer = RetrievalServicer(catalog)

    async def close() -> None:
        await asyncio.to_thread(catalog.close)

    return App(bindings=[Binding(SERVICE, lambda server: retrieval_pb2_grpc.
                                 add_RetrievalServiceServicer_to_server(servicer, server))],
               warmup=catalog.warmup, close=close)
