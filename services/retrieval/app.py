"""Wires the retrieval service: store, encoder, catalog, servicer."""

from __future__ import annotations

import asyncio
import pathlib

from cadenza.kit.server import App, Binding
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.catalog import Catalog, Limits
from services.retrieval.librosa_analyser import LibrosaAnalyser
from services.retrieval.qdrant_store import QdrantStore
from services.retrieval.servicer import RetrievalServicer
from services.retrieval.settings import RetrievalSettings
from services.retrieval.text_embedding import TextEncoder

SERVICE = "cadenza.retrieval.v1.RetrievalService"


def _open(settings: RetrievalSettings) -> tuple[QdrantStore, TextEncoder]:
    pathlib.Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    store = QdrantStore.open(f"{settings.data_dir}/qdrant", settings.qdrant_url,
                             settings.qdrant_api_key)
    return store, TextEncoder.load(pathlib.Path(settings.text_model_dir))


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
