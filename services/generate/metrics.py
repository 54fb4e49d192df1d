"""Generation metrics: inference time per backend and model, batches, queue, tokens."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cadenza.kit.metrics import LATENCY_BUCKETS_S

INFERENCE_SECONDS = Histogram(
    "cadenza_generate_inference_seconds", "Time of one backend call (a batched decode step).",
    ("backend", "model"), buckets=LATENCY_BUCKETS_S)
BATCH_SIZE = Histogram(
    "cadenza_generate_batch_size", "Generations sharing one backend call.",
    ("backend", "model"), buckets=(1, 2, 4, 8, 16, 32, 64))
QUEUE_DEPTH = Gauge(
    "cadenza_generate_queue_depth", "Decode steps waiting for the next backend call.",
    ("model",))
IN_FLIGHT = Gauge(
    "cadenza_generate_in_flight", "Generations running now.", ("model",))
# Saturation = sum(cadenza_generate_in_flight) / cadenza_generate_capacity; beyond it
# new generations are refused with RESOURCE_EXHAUSTED.
CAPACITY = Gauge(
    "cadenza_generate_capacity", "Generations this process runs at once at most.")
TOKENS = Counter(
    "cadenza_generate_tokens_total", "Tokens generated (sampled or forced).",
    ("backend", "model"))
GENERATIONS = Counter(
    "cadenza_generate_generations_total", "Finished generations by mode and outcome.",
    ("model", "mode", "outcome"))
FIRST_EVENT_SECONDS = Histogram(
    "cadenza_generate_time_to_first_event_seconds",
    "From request to the first note event sent.", ("model",), buckets=LATENCY_BUCKETS_S)
MUSIC_SECONDS = Counter(
    "cadenza_generate_music_seconds_total", "Seconds of music generated.", ("model",))
