"""Envoy's access-log service: every call Envoy routed to a backend settles its usage
record (reserved by ext_authz when the call was admitted) with the call's status, the
units its backend reported, bytes and latency.

Envoy buffers the entries and streams them in batches, so settling costs the hot path no
round trip; a replayed entry settles the same record again, which the store ignores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC

import grpc
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from cadenza.kit.interceptor import Context
from cadenza.kit.usage import MODEL_KEY, UNITS_KEY
from gateway.access import CALL_ID_HEADER
from gateway.caller import ANONYMOUS, Caller
from gateway.catalog import meter_of
from gateway.edge.config import KEY_HEADER, TENANT_HEADER
from gateway.metering import Metering, Settlement, new_call_id
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
    """envoy.service.accesslog.v3.AccessLogService, settling the gateway's usage records."""

    def __init__(self, usage: UsageMeter, metering: Metering, backends: frozenset[str],
                 trust_caller: bool) -> None:
        self._usage = usage
        self._metering = metering
        self._backends = backends
        # Without keys the edge sets no caller headers; headers a caller sent are not
        # trusted then.
        self._trust_caller = trust_caller

    async def StreamAccessLogs(
            self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
            context: Context) -> als_pb2.StreamAccessLogsResponse:
        """Settles each logged call until Envoy closes the stream."""
        async for message in request_iterator:
            for entry in message.http_logs.log_entry:
                self.record(entry)
        return als_pb2.StreamAccessLogsResponse()

    def record(self, entry: accesslog_pb2.HTTPAccessLogEntry) -> None:
        """Settles one call, if Envoy routed it to a backend."""
        backend = entry.common_properties.upstream_cluster
        if backend not in self._backends:
            return
        request, response = entry.request, entry.response
        headers = request.request_headers
        who = ANONYMOUS
        call_id = ""
        if self._trust_caller:
            who = Caller(headers.get(TENANT_HEADER, ANONYMOUS.tenant),
                         headers.get(KEY_HEADER, ""), frozenset())
            call_id = headers.get(CALL_ID_HEADER, "")
        code = status_of(response)
        meter = meter_of(request.path)
        common = entry.common_properties
        base = self._metering.record(who, call_id or new_call_id(), request.path,
                                     meter.model, meter.unit)
        base = replace(base, time=common.start_time.ToDatetime(tzinfo=UTC))
        trailers = response.response_trailers
        units = trailers.get(UNITS_KEY, "")
        self._metering.settle(base, Settlement(
            code=code, model=trailers.get(MODEL_KEY, ""),
            units=_float(units), unit=meter.unit,
            request_bytes=request.request_body_bytes,
            response_bytes=response.response_body_bytes,
            latency_ms=common.time_to_last_downstream_tx_byte.ToTimedelta()
            .total_seconds() * 1000))
        self._usage.record(who.tenant, backend, request.path, code,
                           request.request_body_bytes, response.response_body_bytes)


def _float(text: str) -> float:
    try:
        return max(0.0, float(text))
    except ValueError:
        return 0.0
