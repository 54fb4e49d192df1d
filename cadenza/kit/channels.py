"""Outbound channels: deadlines and request ids propagated, keepalive, retries, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from cadenza.kit import context, metrics

_SAFE_LEVELS = (MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT)


def is_idempotent(method: MethodDescriptor) -> bool:
    """True when the .proto marks the method safe to repeat (idempotency_level)."""
    return bool(method.GetOptions().idempotency_level in _SAFE_LEVELS)


def service_config(services: Iterable[ServiceDescriptor]) -> str:
    """A gRPC service config: round-robin over every address the name resolves to, and
    retries of idempotent unary methods on UNAVAILABLE only.

    Which methods are idempotent is read from the .proto options, so the contract and
    the retry policy cannot drift apart.
    """
    names = [
        {"service": service.full_name, "method": method.name}
        for service in services
        for method in service.methods
        if is_idempotent(method) and not method.client_streaming
        and not method.server_streaming
    ]
    config: dict[str, Any] = {
        # The default policy (pick_first) sends every call on one connection to one
        # address; behind a headless Kubernetes Service (one DNS A record per ready pod)
        # that pins a client to one pod. round_robin keeps a connection to each address
        # and spreads calls over them.
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [],
    }
    if names:
        config["methodConfig"].append({
            "name": names,
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        })
    return json.dumps(config)


def channel_options(
    services: Iterable[ServiceDescriptor] = (), max_message_bytes: int = 32 * 1024 * 1024
) -> list[tuple[str, Any]]:
    """Client channel options: the retry service config, message limits and keepalive."""
    return [
        ("grpc.service_config", service_config(services)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Detect dead peers on idle connections without upsetting the server's
        # min_ping_interval (20 s, see server_options).
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Reconnect quickly when a backend comes back.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        # Subchannels of this channel only. gRPC otherwise shares them process-wide by
        # address, and a new channel to a port that an old channel found closed joins
        # that subchannel's reconnect backoff: its calls fail 'Connection refused' for up
        # to 2 s although a server now listens there.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def propagate(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call details with the caller's deadline and request id carried over."""
    rid = context.request_id.get()
    metadata = details.metadata
    if rid:
        metadata = grpc.aio.Metadata(*(metadata or ()))
        if not metadata.get_all(context.REQUEST_ID_KEY):
            metadata.add(context.REQUEST_ID_KEY, rid)
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=context.outbound_timeout(details.timeout),
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _ClientInterceptor:
    """Common part of the four client interceptor kinds."""

    kind = "unary"

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    def _begin(self, details: grpc.aio.ClientCallDetails) -> tuple[grpc.aio.ClientCallDetails,
                                                                    tuple[str, str, str]]:
        method = details.method
        name = method.decode() if isinstance(method, bytes) else method
        service, rpc = metrics.split_method(name)
        labels = (self.kind, service, rpc)
        metrics.CLIENT_STARTED.labels(*labels).inc()
        return propagate(details), labels

    def _observe(self, call: Any, labels: tuple[str, str, str]) -> None:
        started = time.perf_counter()

        async def record() -> None:
            try:
                code = await call.code()
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
            metrics.CLIENT_HANDLED.labels(*labels, code.name).inc()
            metrics.CLIENT_HANDLING.labels(*labels).observe(time.perf_counter() - started)

        task = asyncio.get_running_loop().create_task(record())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class _UnaryUnary(_ClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details, labels = self._begin(details)
        call = await continuation(details, request)
        self._observe(call, labels)
        return call


class _UnaryStream(_ClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    kind = "server_stream"

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        details, labels = self._begin(details)
        call = await continuation(details, request)
        self._observe(call, labels)
        return call


class _StreamUnary(_ClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    kind = "client_stream"

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        details, labels = self._begin(details)
        call = await continuation(details, requests)
        self._observe(call, labels)
        return call


class _StreamStream(_ClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    kind = "bidi_stream"

    async def intercept_stream_stream(self, continuation: Any, details: Any,
                                      requests: Any) -> Any:
        details, labels = self._begin(details)
        call = await continuation(details, requests)
        self._observe(call, labels)
        return call


def open_channel(
    target: str,
    services: Iterable[ServiceDescriptor] = (),
    *,
    max_message_bytes: int = 32 * 1024 * 1024,
) -> grpc.aio.Channel:
    """An insecure channel to a mesh peer, with retries for the given services' safe methods.

    Must be called inside the running event loop that will use it.
    """
    return grpc.aio.insecure_channel(
        target,
        options=channel_options(services, max_message_bytes),
        interceptors=[_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()],
    )
