"""Standard gRPC server and client metrics (go-grpc-prometheus names) and the /metrics port."""

from __future__ import annotations

import logging

import prometheus_client
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

# Latency buckets from 0.5 ms (a loopback hop) to 60 s (a long generation).
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)

_LABELS = ("grpc_type", "grpc_service", "grpc_method")

SERVER_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", _LABELS)
SERVER_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed on the server, by status code.",
    (*_LABELS, "grpc_code"))
SERVER_HANDLING = Histogram(
    "grpc_server_handling_seconds", "Time from start to completion of RPCs on the server.",
    _LABELS, buckets=LATENCY_BUCKETS_S)
SERVER_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "Stream messages received by the server.", _LABELS)
SERVER_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Stream messages sent by the server.", _LABELS)

CLIENT_STARTED = Counter(
    "grpc_client_started_total", "RPCs started by this process as a client.", _LABELS)
CLIENT_HANDLED = Counter(
    "grpc_client_handled_total", "RPCs completed as a client, by status code.",
    (*_LABELS, "grpc_code"))
CLIENT_HANDLING = Histogram(
    "grpc_client_handling_seconds", "Time from start to completion of client RPCs.",
    _LABELS, buckets=LATENCY_BUCKETS_S)


def split_method(full_method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    _, service, method = full_method.split("/", 2)
    return service, method


def rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    """The grpc_type label value for a method's streaming shape."""
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


def serve_metrics(host: str, port: int) -> int:
    """Starts the Prometheus HTTP endpoint; returns the bound port (-1: disabled)."""
    if port < 0:
        return -1
    server, _thread = prometheus_client.start_http_server(port, addr=host)
    bound = int(server.server_port)
    logger.info("metrics on http://%s:%d/metrics", host, bound)
    return bound
