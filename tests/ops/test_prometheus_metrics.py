"""After real traffic, Prometheus has every series operators watch, and they moved."""

from __future__ import annotations

import time

import grpc
import pytest

from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.generate.settings import GenerateSettings
from services.recommend.settings import RecommendSettings
from tests.ops.conftest import DEADLINE_S, SCRAPE_INTERVAL_S, Observed
from tools.devmesh import PROCESSES, Mesh
from tools.observe import job_name

# Counters (and histogram counts) the traffic must have moved, by what they answer.
MOVED = {
    # Rate, errors and duration of every process (the standard gRPC names).
    **{f"handled {p}": f'grpc_server_handled_total{{job="{job_name(p)}"}}' for p in PROCESSES},
    **{f"errors {p}": f'grpc_server_handled_total{{job="{job_name(p)}",grpc_code!="OK"}}'
       for p in PROCESSES},
    **{f"duration {p}": f'grpc_server_handling_seconds_count{{job="{job_name(p)}"}}'
       for p in PROCESSES},
    "gateway as a client": 'grpc_client_handled_total{job="cadenza-gateway"}',
    # Gateway: per-backend errors and bytes.
    "gateway retrieval INVALID_ARGUMENT":
        'cadenza_gateway_calls_total{backend="retrieval",grpc_code="INVALID_ARGUMENT"}',
    "gateway retrieval NOT_FOUND":
        'cadenza_gateway_calls_total{backend="retrieval",grpc_code="NOT_FOUND"}',
    "gateway recommend INVALID_ARGUMENT":
        'cadenza_gateway_calls_total{backend="recommend",grpc_code="INVALID_ARGUMENT"}',
    "gateway generate INVALID_ARGUMENT":
        'cadenza_gateway_calls_total{backend="generate",grpc_code="INVALID_ARGUMENT"}',
    "gateway bytes": 'cadenza_gateway_bytes_total{direction="in"}',
    # Retrieval: ingest and feature time, query time per mode.
    "ingest time": "cadenza_retrieval_ingest_seconds_count",
    "feature extraction time": "cadenza_retrieval_feature_extraction_seconds_count",
    "ingested with audio": 'cadenza_retrieval_tracks_ingested_total{content="audio"}',
    "ingested metadata only": 'cadenza_retrieval_tracks_ingested_total{content="metadata"}',
    **{f"query time {mode}": f'cadenza_retrieval_query_seconds_count{{mode="{mode}"}}'
       for mode in ("text", "like_track", "like_audio", "examples_text", "metadata")},
    # Recommend: events stored, training runs and their duration, candidate sources.
    "events stored": 'cadenza_recommend_events_total{outcome="stored"}',
    "training runs": 'cadenza_recommend_training_runs_total{outcome="succeeded"}',
    "training duration": "cadenza_recommend_training_seconds_count",
    "candidate sources": "cadenza_recommend_source_seconds_count",
    "list cache": "cadenza_recommend_list_cache_total",
    "history cache": "cadenza_recommend_history_cache_total",
    "lists refreshed after events": "cadenza_recommend_refreshed_lists_total",
    "catalogue copy": "cadenza_recommend_content_copied_timestamp_seconds",
    # Generate: inference time per backend and model, batches, tokens, generations.
    "inference time": 'cadenza_generate_inference_seconds_count{backend!="",model!=""}',
    "batch sizes": "cadenza_generate_batch_size_count",
    "tokens": "cadenza_generate_tokens_total",
    "generations ok": 'cadenza_generate_generations_total{outcome="ok"}',
    "time to first event": "cadenza_generate_time_to_first_event_seconds_count",
    "music generated": "cadenza_generate_music_seconds_total",
}


@pytest.mark.parametrize("selector", MOVED.values(), ids=MOVED.keys())
def test_traffic_moved_the_series(observed: Observed, selector: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while (grown := observed.moved(selector)) <= 0 and time.monotonic() < deadline:
        time.sleep(SCRAPE_INTERVAL_S)
    assert grown > 0, f"{selector} did not grow during the traffic"


def test_every_process_is_up(observed: Observed) -> None:
    rows = observed.prometheus.query('up{job=~"cadenza-.+"}')
    assert {r["metric"]["job"]: r["value"][1] for r in rows} == {
        job_name(p): "1" for p in PROCESSES}


def value_when(observed: Observed, promql: str, expected: float) -> float:
    """The query's single value, polled until it equals `expected` or the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        rows = observed.prometheus.query(promql)
        value = float(rows[0]["value"][1]) if len(rows) == 1 else float("nan")
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(SCRAPE_INTERVAL_S)


def catalog_size(mesh: Mesh) -> int:
    """Counted by listing every track (listing does not touch the gauge)."""
    with grpc.insecure_channel(mesh.endpoints.address("gateway")) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        total, token = 0, ""
        while True:
            page = stub.ListTracks(tpb.ListTracksRequest(page_size=500, page_token=token),
                                   timeout=60)
            total += len(page.tracks)
            token = page.next_page_token
            if not token:
                return total


def test_catalog_gauge_follows_ingest_and_delete(observed: Observed, mesh: Mesh) -> None:
    expected = catalog_size(mesh)
    assert expected >= 11  # the traffic's 10 + 1 with audio (its deleted one is gone)
    assert value_when(observed, "cadenza_retrieval_catalog_tracks", expected) == expected


def test_generation_capacity_is_the_configured_limit(observed: Observed) -> None:
    capacity = GenerateSettings().max_concurrent
    assert value_when(observed, "cadenza_generate_capacity", capacity) == capacity
    # Saturation per process (in flight is per model, capacity per process).
    rows = observed.wait_for(
        "sum without (model) (cadenza_generate_in_flight) / cadenza_generate_capacity")
    assert 0 <= float(rows[0]["value"][1]) <= 1
    assert observed.wait_for("cadenza_generate_queue_depth")


def test_serving_model_quality_and_publication_time(observed: Observed) -> None:
    algorithm = RecommendSettings().default_algorithm
    quality = observed.wait_for(f'cadenza_recommend_model_quality{{algorithm="{algorithm}"}}')
    by_metric = {r["metric"]["metric"]: float(r["value"][1]) for r in quality}
    assert set(by_metric) == {"recall_at_10", "ndcg_at_10", "users"}
    assert 0 <= by_metric["ndcg_at_10"] <= 1 and 0 <= by_metric["recall_at_10"] <= 1
    assert by_metric["users"] >= observed.traffic.listeners
    published = observed.wait_for(
        f"cadenza_recommend_model_published_timestamp_seconds "
        f">= {observed.traffic.training_started_at_unix_s:.3f}", "published after the run")
    assert len(published) == 1
