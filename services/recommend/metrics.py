"""Recommend's domain metrics: candidate time per source, training runs, events stored."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from cadenza.kit.metrics import LATENCY_BUCKETS_S

SOURCE_SECONDS = Histogram(
    "cadenza_recommend_source_seconds",
    "Time to gather one signal source's candidates for a recommendation.", ("source",),
    buckets=LATENCY_BUCKETS_S)
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
