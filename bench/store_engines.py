"""One embedded engine at one catalog size, in a process of its own (clean RSS figures).

`python -m bench.store_engines ENGINE SIZE DIR` prints one JSON object; bench.retrieval's
engine_rows runs it for each engine and size and prints the table.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from bench.synthetic_tracks import batches, unit_blocks, unit_texts
from services.retrieval.edge_store import EdgeStore
from services.retrieval.model import Range, TrackFilter
from services.retrieval.qdrant_store import QdrantStore
from services.retrieval.similarity import DEFAULT_WEIGHTS, weighted_query
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR, VectorStore

SINGLE_UPSERTS = 1_000  # through store.upsert, the ingest path, one at a time
FLUSHED_UPSERTS = 30
# qdrant-client local mode writes ~140 points/s batched on disk here: 100k would take
# ~12 min, so larger catalogs are built in its in-memory mode (same search code).
LOCAL_DISK_MAX = 10_000
MAX_REPS, MAX_S = 100, 6.0
FILTER = TrackFilter(tags=("jazz",), tempo_bpm=Range(90, 120))


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _latency(call: Callable[[], object]) -> dict[str, float]:
    """p50/p99 ms over up to MAX_REPS calls or MAX_S seconds (at least 5 calls)."""
    call()  # warm
    timings: list[float] = []
    deadline = time.perf_counter() + MAX_S
    while len(timings) < MAX_REPS and (len(timings) < 5 or time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99)),
            "reps": len(timings)}


def _open(engine: str, size: int, path: str) -> tuple[VectorStore, bool]:
    if engine == "edge":
        return EdgeStore.open(path), True
    if size <= LOCAL_DISK_MAX:
        return QdrantStore.open(path), True
    return QdrantStore(QdrantClient(location=":memory:"), "qdrant-embedded"), False


def measure(engine: str, size: int, path: str) -> dict[str, Any]:
    """Build, query, close and reopen one store; the figures as a dict."""
    rss_before = _rss_mib()
    store, on_disk = _open(engine, size, path)
    out: dict[str, Any] = {"engine": engine, "size": size, "on_disk": on_disk}
    chunks = batches(size, SINGLE_UPSERTS)
    first = next(chunks)
    started = time.perf_counter()
    for track, audio, text in first:
        store.upsert(track, audio, text)
    out["upsert_single_per_s"] = len(first) / (time.perf_counter() - started)
    bulk_s = 0.0
    for chunk in chunks:  # generating the next chunk is not timed
        started = time.perf_counter()
        if isinstance(store, EdgeStore | QdrantStore):
            store.upsert_many(chunk)
        bulk_s += time.perf_counter() - started
    out["upsert_bulk_per_s"] = (size - len(first)) / max(bulk_s, 1e-9)
    if isinstance(store, EdgeStore):
        # The cost of an fsync per write, were power-loss durability wanted.
        started = time.perf_counter()
        for track, audio, text in first[:FLUSHED_UPSERTS]:
            store.upsert(track, audio, text)
            store.shard.flush()
        out["upsert_flush_ms"] = (time.perf_counter() - started) * 1000 / FLUSHED_UPSERTS
    rng = np.random.default_rng(1)
    ids = [track.metadata.track_id for track, _, _ in first]

    def audio_query() -> np.ndarray:
        return weighted_query(unit_blocks(rng, 1)[0], DEFAULT_WEIGHTS)

    out["audio"] = _latency(lambda: store.query(AUDIO_VECTOR, audio_query(), TrackFilter(),
                                                10, 0, []))
    out["text"] = _latency(lambda: store.query(TEXT_VECTOR, unit_texts(rng, 1)[0],
                                               TrackFilter(), 10, 0, []))
    out["audio_filtered"] = _latency(lambda: store.query(AUDIO_VECTOR, audio_query(), FILTER,
                                                         10, 0, []))
    out["text_filtered"] = _latency(lambda: store.query(TEXT_VECTOR, unit_texts(rng, 1)[0],
                                                        FILTER, 10, 0, []))
    out["filtered_matches"] = store.count(FILTER)
    out["recommend"] = _latency(lambda: store.recommend(
        AUDIO_VECTOR, ids[:3], ids[3:4], TrackFilter(), 10, 0, []))
    out["recommend_filtered"] = _latency(lambda: store.recommend(
        AUDIO_VECTOR, ids[:3], ids[3:4], FILTER, 10, 0, []))
    out["rss_delta_mib"] = _rss_mib() - rss_before
    out["optimize_s"] = None
    # Edge's optimize() (HNSW for both vectors, as at retrieval's start-up) takes about two
    # minutes at 100k points on this machine (123 s quiet).
    if isinstance(store, EdgeStore):
        started = time.perf_counter()
        store.optimize()
        out["optimize_s"] = time.perf_counter() - started
        out["audio_hnsw"] = _latency(lambda: store.query(AUDIO_VECTOR, audio_query(),
                                                         TrackFilter(), 10, 0, []))
        out["text_hnsw"] = _latency(lambda: store.query(TEXT_VECTOR, unit_texts(rng, 1)[0],
                                                        TrackFilter(), 10, 0, []))
        out["audio_filtered_hnsw"] = _latency(lambda: store.query(
            AUDIO_VECTOR, audio_query(), FILTER, 10, 0, []))
    store.close()
    out["reopen_s"] = None
    if on_disk:
        started = time.perf_counter()
        reopened, _ = _open(engine, size, path)
        reopened.count(TrackFilter())
        out["reopen_s"] = time.perf_counter() - started
        reopened.close()
    return out


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
