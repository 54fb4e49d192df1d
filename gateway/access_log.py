"""Envoy's access-log service: every call Envoy routed to a backend, metered per key.

Envoy buffers the entries and streams them in batches, so metering costs the hot path
no round trip; GetUsage and the usage metrics see a call within one flush interval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from cadenza.kit.interceptor import Context
from gateway.access import ANONYMOUS
from gateway.edge.config import PRINCIPAL_HEADER
from gateway.usage import UsageMeter

_CODES = {code.value[0]: code for code in grpc.StatusCode}
# What a call's HTTP status means when no grpc-status came back (Envoy's local replies
# to REST callers), as gRPC's HTTP mapping reads it.
_FROM_HTTP = {400: grpc.StatusCode.INTERNAL, 401: grpc.StatusCode.UNAUTHENTICATED,
              403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.UNIMPLEMENTED,
              429: grpc.StatusCode.UNAVAILABLE, 502: grpc.StatusCode.UNAVAILABLE,
              503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.UNAVAILABLE}


def status_of(response: accesslog_pb2.HTTPResponseProperties) -> grpc.StatusCode:
    """The call's gRPC status: the grpc-status trailer, or header of a trailers-only reply."""
    raw = (response.response_trailers.get("grpc-status")
           or response.response_headers.get("grpc-status"))
    if raw:
        return _CODES.get(int(raw), grpc.StatusCode.UNKNOWN)
    code = response.response_code.value
    if code == 200:
        return grpc.StatusCode.OK
    return _FROM_HTTP.get(code, grpc.StatusCode.UNKNOWN)


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    """envoy.service.accesslog.v3.AccessLogService, feeding the gateway's usage meter."""

    def __init__(self, usage: UsageMeter, backends: frozenset[str],
                 trust_principal: bool) -> None:
        self._usage = usage
        self._backends = backends
        # Without keys the edge sets no principal; a header a caller sent is not trusted.
        self._trust_principal = trust_principal

    async def StreamAccessLogs(
            self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
            context: Context) -> als_pb2.StreamAccessLogsResponse:
        """Meters each logged call until Envoy closes the stream."""
        async for message in request_iterator:
            for entry in message.http_logs.log_entry:
                self.record(entry)
        return als_pb2.StreamAccessLogsResponse()

    def record(self, entry: accesslog_pb2.HTTPAccessLogEntry) -> None:
        """Meters one call, if Envoy routed it to a backend."""
        backend = entry.common_properties.upstream_cluster
        if backend not in self._backends:
            return
        request, response = entry.request, entry.response
        principal = (request.request_headers.get(PRINCIPAL_HEADER, ANONYMOUS)
                     if self._trust_principal else ANONYMOUS)
        self._usage.record(principal, backend, request.path, status_of(response),
                           request.request_body_bytes, response.response_body_bytes)
