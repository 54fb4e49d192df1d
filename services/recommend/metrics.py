"""Recommend's domain metrics: candidate time per source, training runs and the serving
model's held-out quality and age, events stored."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from cadenza.kit.metrics import LATENCY_BUCKETS_S

SOURCE_SECONDS = Histogram(
    "cadenza_recommend_source_seconds",
    "Time to gather one signal source's candidates for a recommendation.", ("source",),
    buckets=LATENCY_BUCKETS_S)
LIST_CACHE = Counter(
    "cadenza_recommend_list_cache_total", "Recommend calls answered from the list cache "
    "(hit) or computed (miss).", ("result",))
WARMED_LISTS = Counter(
    "cadenza_recommend_warmed_lists_total", "Default lists computed ahead for active users "
    "after a publish or a catalogue change.")
REFRESHED_LISTS = Counter(
    "cadenza_recommend_refreshed_lists_total", "Default lists computed ahead right after "
    "the user's own new events (users who asked for a list lately).")
HISTORY_CACHE = Counter(
    "cadenza_recommend_history_cache_total", "Engagement reads answered from memory (hit) "
    "or from the event store (miss).", ("result",))
CONTENT_TRACKS = Gauge(
    "cadenza_recommend_content_tracks", "Tracks in the catalogue copy the content signal "
    "scores (0 before the first copy).")
CONTENT_COPIED = Gauge(
    "cadenza_recommend_content_copied_timestamp_seconds",
    "When the catalogue copy last matched retrieval's revision (Unix time).")
COLD_START = Counter(
    "cadenza_recommend_cold_start_total", "Recommendations for users with no history.")
TRAINING_SECONDS = Histogram(
    "cadenza_recommend_training_seconds", "Whole training run time (read, fit, publish).",
    ("algorithm",), buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800))
TRAINING_RUNS = Counter(
    "cadenza_recommend_training_runs_total", "Training runs by outcome.",
    ("algorithm", "outcome"))
EVENTS = Counter(
    "cadenza_recommend_events_total", "Events received, by outcome (stored, duplicate, "
    "rejected).", ("outcome",))
# The serving model's hold-out figures (services/recommend/quality.py), by metric
# (recall_at_10, ndcg_at_10, users: how many users the figures average over).
MODEL_QUALITY = Gauge(
    "cadenza_recommend_model_quality", "Held-out quality measured when the serving model "
    "was trained.", ("algorithm", "metric"))
# time() - this = the serving model's age; a stale model means training stopped.
MODEL_PUBLISHED = Gauge(
    "cadenza_recommend_model_published_timestamp_seconds",
    "When the serving model was published (Unix time).")


def show_serving_model(algorithm: str, quality: dict[str, Any], published_at_s: float) -> None:
    """Points the model gauges at the model that serves now (old algorithm labels go)."""
    MODEL_QUALITY.clear()
    for metric, value in quality.items():
        MODEL_QUALITY.labels(algorithm, metric).set(float(value))
    MODEL_PUBLISHED.set(published_at_s)
