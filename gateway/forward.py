"""Forwards public calls to their backend as raw bytes: no protobuf decode or re-encode.

The handlers are generic (request and response stay bytes), so the gateway's cost per
hop is the two socket hops and a little Python, whatever the message size.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from cadenza.kit import context, metrics
from cadenza.kit.channels import channel_options
from cadenza.kit.interceptor import Context, Handler
from cadenza.kit.usage import read_usage
from gateway.access import CALL_ID_HEADER, reservation
from gateway.caller import caller
from gateway.catalog import meter_of
from gateway.metering import Metering, Settlement, new_call_id
from gateway.routes import Backend
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter

Metadata = grpc.aio.Metadata | tuple[tuple[str, str | bytes], ...] | None

# Trailing metadata that carries rich error details (google.rpc.Status) end to end.
_PASSED_TRAILERS = ("grpc-status-details-bin",)


class Forwarder:
    """One backend's channel and a generic handler for each of its public methods."""

    def __init__(self, backend: Backend, settings: GatewaySettings, usage: UsageMeter,
                 metering: Metering) -> None:
        self.backend = backend
        self._usage = usage
        self._metering = metering
        self._unary_deadline_s = settings.default_unary_deadline_s
        self._stream_deadline_s = settings.default_stream_deadline_s
        self.channel = grpc.aio.insecure_channel(
            backend.address,
            options=channel_options([backend.service], settings.max_message_bytes),
        )

    def handler(self) -> grpc.GenericRpcHandler:
        """Generic handlers that forward every method of the backend's service as raw bytes."""
        handlers = {}
        for method in self.backend.service.methods:
            full = f"/{self.backend.service.full_name}/{method.name}"
            shape = (method.client_streaming, method.server_streaming)
            route = _Route(full, (metrics.rpc_type(*shape), *metrics.split_method(full)))
            handlers[method.name] = _MAKERS[shape](self, route)
        return grpc.method_handlers_generic_handler(self.backend.service.full_name, handlers)

    async def close(self) -> None:
        """Closes the channel to the backend."""
        await self.channel.close()

    # -- helpers shared by the four shapes ---------------------------------------------

    def _timeout(self, ctx: Context, streaming: bool) -> float:
        left = ctx.time_remaining()
        if left is None:
            return self._stream_deadline_s if streaming else self._unary_deadline_s
        return float(left)

    async def _begin(self, ctx: Context) -> None:
        """Tells the caller the id its usage is recorded under (x-cadenza-call-id)."""
        record = reservation.get()
        if record is not None:
            await ctx.send_initial_metadata(((CALL_ID_HEADER, record.request_id),))

    def _end(self, route: _Route, code: grpc.StatusCode, started: float, sent: int,
             received: int, trailers: Metadata) -> None:
        # The client-side standard metrics, recorded inline instead of by an
        # interceptor: the gateway's hot path stays one frame deep.
        elapsed_s = time.perf_counter() - started
        route.handled(code).inc()
        route.handling.observe(elapsed_s)
        who = caller.get()
        self._usage.record(who.tenant, self.backend.name, route.full, code, sent, received)
        meter = meter_of(route.full)
        record = reservation.get() or self._metering.record(
            who, new_call_id(), route.full, meter.model, meter.unit)
        reported = read_usage(trailers or ())
        model, units = reported if reported is not None else ("", 0.0)
        self._metering.settle(record, Settlement(
            code=code, model=model, units=units, unit=meter.unit, request_bytes=sent,
            response_bytes=received, latency_ms=elapsed_s * 1000))

    async def _relay(self, ctx: Context, error: grpc.aio.AioRpcError) -> None:
        """Ends the call with the backend's status and message, unchanged but for naming
        the backend when it is unreachable."""
        code, details = error.code(), error.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            details = (f"{self.backend.name} backend ({self.backend.address}) is unavailable: "
                       f"{details}")
        trailers = tuple(
            (key, value) for key, value in (error.trailing_metadata() or ())
            if key in _PASSED_TRAILERS
        )
        await ctx.abort(code, details, trailers)


class _Route:
    """One forwarded method and its client metric children, looked up once."""

    def __init__(self, full: str, labels: tuple[str, str, str]) -> None:
        self.full = full
        self.labels = labels  # (grpc_type, grpc_service, grpc_method)
        self.started = metrics.CLIENT_STARTED.labels(*labels)
        self.handling = metrics.CLIENT_HANDLING.labels(*labels)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode) -> Any:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = metrics.CLIENT_HANDLED.labels(*self.labels,
                                                                          code.name)
        return counter


def _outbound_metadata() -> tuple[tuple[str, str], ...]:
    return ((context.REQUEST_ID_KEY, context.request_id.get()),)


def _unary_unary(fw: Forwarder, route: _Route) -> Handler:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = fw.channel.unary_unary(route.full)

    async def forward(request: bytes, ctx: Context) -> bytes:
        started = time.perf_counter()
        route.started.inc()
        await fw._begin(ctx)
        pending = call(request, timeout=fw._timeout(ctx, False), metadata=_outbound_metadata())
        try:
            response: bytes = await pending
        except grpc.aio.AioRpcError as error:
            fw._end(route, error.code(), started, len(request), 0, error.trailing_metadata())
            await fw._relay(ctx, error)
            raise
        fw._end(route, grpc.StatusCode.OK, started, len(request), len(response),
                await pending.trailing_metadata())
        return response

    return grpc.unary_unary_rpc_method_handler(forward)


def _unary_stream(fw: Forwarder, route: _Route) -> Handler:
    open_call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = fw.channel.unary_stream(
        route.full)

    async def forward(request: bytes, ctx: Context) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        route.started.inc()
        await fw._begin(ctx)
        call = open_call(request, timeout=fw._timeout(ctx, True), metadata=_outbound_metadata())
        received = 0
        code = grpc.StatusCode.CANCELLED
        trailers: Metadata = None
        try:
            async for response in call:
                received += len(response)
                yield response
            code = grpc.StatusCode.OK
            trailers = await call.trailing_metadata()
        except grpc.aio.AioRpcError as error:
            code, trailers = error.code(), error.trailing_metadata()
            await fw._relay(ctx, error)
        finally:
            # A caller that goes away must free the backend's work too.
            call.cancel()
            fw._end(route, code, started, len(request), received, trailers)

    return grpc.unary_stream_rpc_method_handler(forward)


class _Counted:
    """Counts the bytes of a request stream as it is forwarded."""

    def __init__(self, requests: AsyncIterator[bytes]) -> None:
        self.requests = requests
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for request in self.requests:
            self.size += len(request)
            yield request


def _stream_unary(fw: Forwarder, route: _Route) -> Handler:
    call: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = fw.channel.stream_unary(
        route.full)

    async def forward(requests: AsyncIterator[bytes], ctx: Context) -> bytes:
        started = time.perf_counter()
        route.started.inc()
        counted = _Counted(requests)
        await fw._begin(ctx)
        pending = call(counted.__aiter__(), timeout=fw._timeout(ctx, True),
                       metadata=_outbound_metadata())
        try:
            response: bytes = await pending
        except grpc.aio.AioRpcError as error:
            fw._end(route, error.code(), started, counted.size, 0, error.trailing_metadata())
            await fw._relay(ctx, error)
            raise
        fw._end(route, grpc.StatusCode.OK, started, counted.size, len(response),
                await pending.trailing_metadata())
        return response

    return grpc.stream_unary_rpc_method_handler(forward)


def _stream_stream(fw: Forwarder, route: _Route) -> Handler:
    open_call: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = fw.channel.stream_stream(
        route.full)

    async def forward(requests: AsyncIterator[bytes],
                      ctx: Context) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        route.started.inc()
        counted = _Counted(requests)
        await fw._begin(ctx)
        call = open_call(counted.__aiter__(), timeout=fw._timeout(ctx, True),
                         metadata=_outbound_metadata())
        received = 0
        code = grpc.StatusCode.CANCELLED
        trailers: Metadata = None
        try:
            async for response in call:
                received += len(response)
                yield response
            code = grpc.StatusCode.OK
            trailers = await call.trailing_metadata()
        except grpc.aio.AioRpcError as error:
            code, trailers = error.code(), error.trailing_metadata()
            await fw._relay(ctx, error)
        finally:
            call.cancel()
            fw._end(route, code, started, counted.size, received, trailers)

    return grpc.stream_stream_rpc_method_handler(forward)


_MAKERS: dict[tuple[bool, bool], Callable[[Forwarder, _Route], Any]] = {
    (False, False): _unary_unary,
    (False, True): _unary_stream,
    (True, False): _stream_unary,
    (True, True): _stream_stream,
}
