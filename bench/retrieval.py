"""Retrieval: feature extraction speed, and search latency per mode through the gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
import librosa
import numpy as np
import soundfile

from bench.harness import Latency, Row, load, print_table
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.edge_store import EdgeStore
from services.retrieval.feature_speed import benchmark_clip, measure_extraction_speed
from services.retrieval.model import Range, TrackFilter
from services.retrieval.similarity import DEFAULT_WEIGHTS, audio_vector, weighted_query
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR, VectorStore
from tests.retrieval.helpers import make_track, random_text_vector
from tools.devmesh import Endpoints, Mesh

SIZES = (1_000, 10_000)
SEARCH_S = 3.0


def feature_rows() -> list[Row]:
    """Extraction speed per feature group, and our pitch tracker against librosa.pyin."""
    speed = measure_extraction_speed()
    clip = benchmark_clip(10.0)
    started = time.process_time()
    librosa.pyin(clip, fmin=65, fmax=2093, sr=22050)
    pyin_speed = 10.0 / (time.process_time() - started)
    rows = [Row("feature extraction", group, f"{value:.0f}x real time", "1x real time",
                f"{value:.0f}", "audio s per CPU s, warm, 30 s clip" if group in (
                    "spectra", "total") else "own work on top of the shared spectra")
            for group, value in speed.items()]
    rows.append(Row("pitch tracker", "ours (yin) vs librosa.pyin", f"{speed['pitch']:.0f}x",
                    f"{pyin_speed:.1f}x", f"{speed['pitch'] / pyin_speed:.0f}",
                    "audio s per CPU s"))
    return rows


def _populate(data_dir: pathlib.Path, size: int) -> tuple[EdgeStore, list[str]]:
    """A catalog in the embedded default engine (Qdrant Edge), where the mesh opens it."""
    rng = np.random.default_rng(size)
    store = EdgeStore.open(str(data_dir / "retrieval" / "edge"))
    ids = []
    for start in range(0, size, 500):
        batch = []
        for i in range(start, min(size, start + 500)):
            track = make_track(i, rng)
            assert track.features is not None
            batch.append((track, audio_vector(track.features), random_text_vector(rng)))
            ids.append(track.metadata.track_id)
        store.upsert_many(batch)
    return store, ids


def _store_reference(store: VectorStore, ids: list[str]) -> dict[str, float]:
    """p50 of the same queries made straight on the store, in process (no gRPC)."""
    rng = np.random.default_rng(1)
    [example] = store.get([ids[0]], with_vectors=True)
    assert example.audio_vector is not None
    query = weighted_query(example.audio_vector, DEFAULT_WEIGHTS)
    cases: dict[str, Callable[[], object]] = {
        "audio": lambda: store.query(AUDIO_VECTOR, query, TrackFilter(), 10, 0, [ids[0]]),
        "text": lambda: store.query(TEXT_VECTOR, random_text_vector(rng), TrackFilter(), 10,
                                    0, []),
        "metadata": lambda: store.scroll(TrackFilter(tempo_bpm=Range(90, 120)), 10, None),
    }
    result = {}
    for name, call in cases.items():
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            call()
            timings.append(time.perf_counter() - started)
        result[name] = float(np.median(timings) * 1000)
    return result


def agreement_rows(store: VectorStore, size: int, queries: int = 20) -> list[Row]:
    """S(x) from Qdrant against NumPy brute force over every stored vector."""
    ids = [f"t{i:05d}" for i in range(size)]
    stored = store.get(ids, with_vectors=True)
    matrix = np.stack([s.audio_vector for s in stored if s.audio_vector is not None])
    order = [s.track.metadata.track_id for s in stored]
    rng = np.random.default_rng(3)
    max_diff, overlap = 0.0, []
    for _ in range(queries):
        weights = dict(zip(DEFAULT_WEIGHTS, rng.dirichlet(np.ones(len(DEFAULT_WEIGHTS))),
                           strict=True))
        query = weighted_query(matrix[rng.integers(len(matrix))], weights)
        brute = matrix.astype(np.float64) @ query.astype(np.float64)
        top = {order[i] for i in np.argsort(-brute)[:10]}
        hits = store.query(AUDIO_VECTOR, query, TrackFilter(), 10, 0, [])
        by_id = dict(zip(order, brute, strict=True))
        max_diff = max(max_diff, *(abs(h.score - by_id[h.stored.track.metadata.track_id])
                                   for h in hits))
        overlap.append(len(top & {h.stored.track.metadata.track_id for h in hits}) / 10)
    return [Row("S(x) agreement", f"{size} tracks, {queries} random weightings",
                f"max |diff| {max_diff:.1e}", "NumPy brute force", f"{np.mean(overlap):.2f}",
                "ratio = mean top-10 overlap")]


def _clip() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, benchmark_clip(6.0), 22050, format="WAV")
    return buffer.getvalue()


async def _search(address: str, ids: list[str]) -> dict[str, Latency]:
    clip = _clip()
    requests = {
        "text": pb.SearchTracksRequest(text="a slow chorale in a minor key"),
        "like_track": pb.SearchTracksRequest(like_track_id=ids[0]),
        "examples": pb.SearchTracksRequest(examples=pb.TrackExamples(
            positive_track_ids=ids[:3], negative_track_ids=ids[3:4])),
        "like_audio (6 s clip)": pb.SearchTracksRequest(like_audio=pb.AudioClip(data=clip)),
        "metadata only": pb.SearchTracksRequest(filter=pb.TrackFilter(
            tempo_bpm=pb.FloatRange(min=90, max=120))),
        "like_track + filter": pb.SearchTracksRequest(like_track_id=ids[0], filter=pb.TrackFilter(
            tempo_bpm=pb.FloatRange(min=90, max=120))),
    }
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        return {mode: await load(functools.partial(stub.SearchTracks, request, timeout=60), 1,
                                 SEARCH_S, warmup_calls=3)
                for mode, request in requests.items()}


def search_rows() -> list[Row]:
    """Search latency per mode through the gateway, at each catalog size in SIZES."""
    rows = []
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = pathlib.Path(tmp) / "data"
            store, ids = _populate(data_dir, size)
            reference = _store_reference(store, ids)
            agreement = agreement_rows(store, size)
            store.close()
            mesh = Mesh(pathlib.Path(tmp), Endpoints.free(), data_dir=data_dir)
            mesh.start(timeout_s=180)
            try:
                results = asyncio.run(_search(mesh.endpoints.address("gateway"), ids))
            finally:
                mesh.stop()
        rows += agreement
        for mode, latency in results.items():
            ref_key = ("text" if mode == "text" else "metadata" if mode == "metadata only"
                       else "audio")
            ref = reference[ref_key]
            rows.append(Row(f"search {mode}", f"{size} tracks",
                            f"p50 {latency.p50_ms:.1f} / p99 {latency.p99_ms:.1f} ms",
                            f"{ref:.1f} ms", f"{latency.p50_ms / ref:.1f}x",
                            f"{latency.calls} calls"))
    return rows


INGEST_PIECES = 40


def ingest_rows() -> list[Row]:
    """Demo pieces (pre-rendered) ingested through the gateway vs straight to retrieval."""
    from tools.catalog.build import piece_requests
    from tools.catalog.listing import list_demo_sources
    from tools.catalog.source import iter_rendered_pieces

    sources = list_demo_sources()
    step = max(1, len(sources) // INGEST_PIECES)
    pieces = list(iter_rendered_pieces(sources[::step][:INGEST_PIECES], workers=2))
    audio_s = sum(p.duration_s for p, _ in pieces)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Mesh(pathlib.Path(tmp), Endpoints.free())
        mesh.start(timeout_s=180)
        try:
            for route in ("gateway", "retrieval"):
                with grpc.insecure_channel(mesh.endpoints.address(route)) as channel:
                    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
                    started = time.perf_counter()
                    for piece, audio in pieces:
                        piece = dataclasses.replace(piece, track_id=f"{piece.track_id}-{route}")
                        stub.IngestTrack(piece_requests(piece, audio), timeout=120)
                    results[route] = time.perf_counter() - started
        finally:
            mesh.stop()
    via, direct = results["gateway"], results["retrieval"]
    return [Row("ingest demo pieces", f"{len(pieces)} pieces, {audio_s / 60:.0f} min audio",
                f"{len(pieces) / via * 60:.0f} tracks/min", f"{len(pieces) / direct * 60:.0f} "
                "tracks/min", f"{direct / via:.2f}", "via gateway vs direct; 1 at a time")]


ENGINE_SIZES = (10_000, 100_000)


def _engine_figures(engine: str, size: int) -> dict[str, Any]:
    # One process per engine and size: RSS deltas are not mixed up, and one at a time.
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "bench.store_engines", engine, str(size),
                               f"{tmp}/store"], capture_output=True, text=True, check=True,
                              timeout=1800)
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    print(done.stdout.splitlines()[-1], file=sys.stderr)  # the raw figures, as they come
    return figures


def _ms(latency: dict[str, float], p99: bool = True) -> str:
    text = f"p50 {latency['p50']:.1f}"
    return text + (f" / p99 {latency['p99']:.1f} ms" if p99 else " ms")


def _engine_size_rows(edge: dict[str, Any], local: dict[str, Any]) -> list[Row]:
    size = f"{edge['size']:,} points"
    local_where = "disk" if local["on_disk"] else "memory (a disk build is too slow)"
    rows = [
        Row("upsert, one at a time", size, f"{edge['upsert_single_per_s']:.0f} points/s",
            f"{local['upsert_single_per_s']:.0f} points/s",
            f"{edge['upsert_single_per_s'] / local['upsert_single_per_s']:.1f}x",
            f"store.upsert, first 1,000; local mode on {local_where}"),
        Row("upsert, batches", size, f"{edge['upsert_bulk_per_s']:.0f} points/s",
            f"{local['upsert_bulk_per_s']:.0f} points/s",
            f"{edge['upsert_bulk_per_s'] / local['upsert_bulk_per_s']:.1f}x",
            f"upsert_many, 1,000 a call; local mode on {local_where}"),
        Row("upsert + flush (fsync)", size, f"{edge['upsert_flush_ms']:.0f} ms/point", "-", "-",
            "edge only: the price of power-loss durability per write"),
    ]
    for key, name in (("audio", "query audio (dot)"), ("text", "query text (cosine)"),
                      ("audio_filtered", "query audio + filter"),
                      ("text_filtered", "query text + filter"),
                      ("recommend", "recommend (3+/1-, audio)"),
                      ("recommend_filtered", "recommend + filter")):
        note = f"{edge[key]['reps']} / {local[key]['reps']} calls"
        if "filter" in key:
            note += f"; tag + tempo range, {edge['filtered_matches']:,} match"
        rows.append(Row(name, size, _ms(edge[key]), _ms(local[key]),
                        f"{local[key]['p50'] / edge[key]['p50']:.1f}x", note))
    rows.append(Row("optimize (HNSW build)", size, f"{edge['optimize_s']:.1f} s", "-", "-",
                    "edge only, done at start-up; the queries above are exact scans"))
    for key, name in (("audio_hnsw", "query audio, after optimize"),
                      ("text_hnsw", "query text, after optimize"),
                      ("audio_filtered_hnsw", "query audio + filter, after optimize")):
        base = key.removesuffix("_hnsw")
        rows.append(Row(name, size, _ms(edge[key]), _ms(local[base]),
                        f"{local[base]['p50'] / edge[key]['p50']:.1f}x",
                        f"{edge[key]['reps']} / {local[base]['reps']} calls"))
    reopen = "-" if local["reopen_s"] is None else f"{local['reopen_s']:.2f} s"
    rows += [
        Row("reopen", size, f"{edge['reopen_s']:.2f} s", reopen,
            "-" if local["reopen_s"] is None else f"{local['reopen_s'] / edge['reopen_s']:.1f}x",
            "open + count" + ("" if local["reopen_s"] else "; local mode was in memory")),
        Row("memory (RSS delta)", size, f"{edge['rss_delta_mib']:.0f} MiB",
            f"{local['rss_delta_mib']:.0f} MiB",
            f"{local['rss_delta_mib'] / max(edge['rss_delta_mib'], 1):.1f}x",
            "after build and queries"),
    ]
    return rows


def engine_rows() -> list[Row]:
    """Qdrant Edge against qdrant-client's local mode, in process, at each ENGINE_SIZES."""
    rows = []
    for size in ENGINE_SIZES:
        rows += _engine_size_rows(_engine_figures("edge", size), _engine_figures("local", size))
    print_table("Embedded engines, in process (ours: Qdrant Edge; reference: qdrant-client "
                "local mode; ratio: how many times edge is better)", rows, "edge", "local")
    return rows


def run() -> list[Row]:
    """Runs and prints every retrieval benchmark; returns all their rows."""
    features = feature_rows()
    print_table("Feature extraction (ours vs real time; pitch: ours vs librosa.pyin)",
                features, "ours", "reference")
    ingest = ingest_rows()
    print_table("Ingest (ours: through the gateway; reference: straight to retrieval)",
                ingest, "via gateway", "direct")
    search = search_rows()
    print_table("Search through the gateway (ours: end to end, 1 in flight; reference: the "
                "same store query in process, p50)", search, "via gateway", "store only")
    return features + ingest + search + engine_rows()
