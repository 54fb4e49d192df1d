"""The one server interceptor: request context, standard metrics and error-to-status mapping.

One wrapper instead of three keeps the per-call cost to a single extra frame, which
matters on the gateway where every public call passes through it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import grpc.aio

from cadenza.kit import context, metrics
from cadenza.kit.errors import CadenzaError

logger = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# Health and reflection are polled constantly by probes; counting them drowns the signal.
_UNOBSERVED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class _MethodMetrics:
    """The metric children of one method, looked up once rather than on every call."""

    __slots__ = ("handled", "handling", "labels", "received", "sent", "started")

    def __init__(self, method: str, kind: str) -> None:
        service, name = metrics.split_method(method)
        self.labels = (kind, service, name)
        self.started = metrics.SERVER_STARTED.labels(*self.labels)
        self.handling = metrics.SERVER_HANDLING.labels(*self.labels)
        self.sent = metrics.SERVER_MSG_SENT.labels(*self.labels)
        self.received = metrics.SERVER_MSG_RECEIVED.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def finish(self, code: grpc.StatusCode, started: float) -> None:
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = metrics.SERVER_HANDLED.labels(*self.labels, code.name)
        counter.inc()
        self.handling.observe(time.perf_counter() - started)


def _enter(ctx: Context) -> None:
    """Sets the request id and deadline for everything this call does downstream."""
    rid = ""
    for key, value in ctx.invocation_metadata() or ():
        if key == context.REQUEST_ID_KEY:
            rid = str(value)[:64]
            break
    context.request_id.set(rid or context.new_request_id())
    left = ctx.time_remaining()
    context.deadline.set(None if left is None else time.monotonic() + left)


def _status_for(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a caller sees for an exception; internals never leak out."""
    if isinstance(error, CadenzaError):
        return error.code, error.message
    logger.error("unhandled error", exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {context.request_id.get()})"


def _code_after_abort(ctx: Context) -> grpc.StatusCode:
    code = ctx.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


async def _count(requests: AsyncIterator[Any], counter: Any) -> AsyncIterator[Any]:
    async for request in requests:
        counter.inc()
        yield request


def _wrap_unary_response(
    behavior: Callable[..., Awaitable[Any]], m: _MethodMetrics, streaming_in: bool,
) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, ctx: Context) -> Any:
        _enter(ctx)
        started = time.perf_counter()
        m.started.inc()
        if streaming_in:
            request = _count(request, m.received)
        try:
            response = await behavior(request, ctx)
        except grpc.aio.AbortError:
            m.finish(_code_after_abort(ctx), started)
            raise
        except asyncio.CancelledError:
            m.finish(grpc.StatusCode.CANCELLED, started)
            raise
        except Exception as error:
            code, message = _status_for(error)
            m.finish(code, started)
            await ctx.abort(code, message)
        m.finish(grpc.StatusCode.OK, started)
        return response

    return handler


def _wrap_stream_response(
    behavior: Callable[..., Any], m: _MethodMetrics, streaming_in: bool,
) -> Callable[..., Any]:
    async def handler(request: Any, ctx: Context) -> AsyncIterator[Any]:
        _enter(ctx)
        started = time.perf_counter()
        m.started.inc()
        if streaming_in:
            request = _count(request, m.received)
        try:
            async for response in behavior(request, ctx):
                m.sent.inc()
                yield response
        except grpc.aio.AbortError:
            m.finish(_code_after_abort(ctx), started)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            m.finish(grpc.StatusCode.CANCELLED, started)
            raise
        except Exception as error:
            code, message = _status_for(error)
            m.finish(code, started)
            await ctx.abort(code, message)
        m.finish(grpc.StatusCode.OK, started)

    return handler


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so each call gets context, metrics and clean status codes."""

    def __init__(self) -> None:
        # method -> (handler as registered, wrapped handler): wrapping once per method
        # rather than once per call keeps allocations off the hot path.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Wraps the method's handler (once per method) with context, metrics and status mapping."""
        handler = await continuation(details)
        if handler is None or details.method.startswith(_UNOBSERVED_PREFIXES):
            return handler
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, details.method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped


def _wrap(handler: Handler, method: str) -> Handler:
    """The handler with context, metrics and error mapping around its behaviour."""
    streaming_in = bool(handler.request_streaming)
    kind = metrics.rpc_type(streaming_in, bool(handler.response_streaming))
    ser, de = handler.response_serializer, handler.request_deserializer
    behavior: Any  # the stubs type behaviours as sync callables; ours are coroutines
    if handler.response_streaming:
        behavior = handler.stream_stream if streaming_in else handler.unary_stream
        if not inspect.isasyncgenfunction(behavior):
            # Handlers that write with ctx.write() are left as they are.
            return handler
        wrapped = _wrap_stream_response(behavior, _MethodMetrics(method, kind), streaming_in)
        make = (grpc.stream_stream_rpc_method_handler if streaming_in
                else grpc.unary_stream_rpc_method_handler)
    else:
        behavior = handler.stream_unary if streaming_in else handler.unary_unary
        wrapped = _wrap_unary_response(behavior, _MethodMetrics(method, kind), streaming_in)
        make = (grpc.stream_unary_rpc_method_handler if streaming_in
                else grpc.unary_unary_rpc_method_handler)
    return make(wrapped, request_deserializer=de, response_serializer=ser)
