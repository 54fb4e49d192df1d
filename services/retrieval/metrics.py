"""Retrieval's domain metrics: ingest and feature time, catalog size, query time per mode."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cadenza.kit.metrics import LATENCY_BUCKETS_S

FEATURE_SECONDS = Histogram(
    "cadenza_retrieval_feature_extraction_seconds",
    "Decoding and feature extraction time per audio file.", buckets=LATENCY_BUCKETS_S)
INGEST_SECONDS = Histogram(
    "cadenza_retrieval_ingest_seconds",
    "Whole ingest time per track (features, text embedding, store write).",
    buckets=LATENCY_BUCKETS_S)
INGESTED = Counter(
    "cadenza_retrieval_tracks_ingested_total", "Tracks written, by content.", ("content",))
QUERY_SECONDS = Histogram(
    "cadenza_retrieval_query_seconds", "Store query time per search mode.", ("mode",),
    buckets=LATENCY_BUCKETS_S)
# Set from the store's count at warm-up (and by every GetCatalogStats), then moved by
# this process's ingests of new tracks and deletes. Replicas sharing a Qdrant server each
# see their own writes only until the next recount: read it with max(), not sum().
CATALOG_TRACKS = Gauge(
    "cadenza_retrieval_catalog_tracks", "Tracks in the catalog.")
