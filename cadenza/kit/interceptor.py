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
from cadenza.kit.errors import CadenzaError, InvalidArgument

logger = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# Health and reflection are polled constantly by probes; counting them drowns the signal.
_UNOBSERVED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_MAX_DETAILS = 1024  # UTF-8 bytes of an error message sent to the caller
# How much of a failed call's request stream to read before answering (RequestStream).
_DRAIN_S = 2.0
_DRAIN_BYTES = 32 * 1024 * 1024


class _MethodMetrics:
    """The metric children of one method, looked up once rather than on every call."""

    __slots__ = ("handled", "handling", "labels", "method", "received", "sent", "started")

    def __init__(self, method: str, kind: str) -> None:
        self.method = method
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


def _status_for(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a caller sees for an exception; internals never leak out."""
    if isinstance(error, BadRequestBody):
        # The caller's mistake, and cheap to send in bulk: one line, no traceback.
        logger.warning("%s: %s (request id %s)", method, error.message,
                       context.request_id.get())
    if isinstance(error, CadenzaError):
        return error.code, _capped(error.message)
    logger.error("unhandled error", exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {context.request_id.get()})"


def _capped(message: str) -> str:
    # Status details travel in trailers, which clients cap (8 KiB by default); a message
    # that echoes a huge input would otherwise become a transport error. The cap is in
    # bytes, not characters: gRPC percent-encodes every non-ASCII byte (3 characters
    # each), so 1,024 characters of CJK text would be 9 KiB on the wire and the caller
    # would see RESOURCE_EXHAUSTED instead of the status (the fuzz suite found it).
    encoded = message.encode()
    if len(encoded) <= _MAX_DETAILS:
        return message
    return encoded[:_MAX_DETAILS].decode(errors="ignore") + "..."


def _code_after_abort(ctx: Context) -> grpc.StatusCode:
    code = ctx.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


class BadRequestBody(InvalidArgument):
    """A request message that does not decode as the method's request type."""

    def __init__(self, type_name: str, error: Exception, index: int | None = None) -> None:
        where = "the request body" if index is None else f"message {index} of the request stream"
        super().__init__("", f"{where} is not a valid {type_name} message ({error}); send "
                             "one serialized by the method's stub")


class RequestDecoder:
    """The one place request bytes become a message, for every method and call shape.

    grpcio would otherwise decode before any handler runs, so a body that does not parse
    ended as UNKNOWN with a logged traceback, outside every metric. Generic handlers (the
    gateway's forwarders) have no deserializer and take the bytes as they are.
    """

    __slots__ = ("decode", "type_name")

    def __init__(self, decode: Callable[[bytes], Any] | None) -> None:
        self.decode = decode
        descriptor = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
        self.type_name = getattr(descriptor, "full_name", "request")

    def __call__(self, raw: bytes, index: int | None = None) -> Any:
        """The decoded message; BadRequestBody (INVALID_ARGUMENT) when it does not parse.

        `index` is the message's 0-based place in a request stream, for the error."""
        if self.decode is None:
            return raw
        try:
            return self.decode(raw)
        except Exception as error:  # DecodeError, or whatever a custom deserializer raises
            raise BadRequestBody(self.type_name, error, index) from None


class RequestStream:
    """A client stream as the behaviour sees it: decoded, counted, and drainable.

    When a call fails before its request stream ended, drain() reads what is left before
    the status goes out. A grpc.aio client that is still writing when the status arrives
    reports its own INTERNAL instead of it (grpc/grpc#36066), and the gateway is such a
    client; read to the end, the caller's status arrives intact.
    """

    __slots__ = ("_counter", "_decode", "_raw", "ended", "index")

    def __init__(self, raw: AsyncIterator[bytes], decode: RequestDecoder, counter: Any) -> None:
        self._raw = raw.__aiter__()
        self._decode = decode
        self._counter = counter
        self.index = 0
        self.ended = False

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> Any:
        """The next decoded message; BadRequestBody names its index when it does not parse."""
        try:
            raw = await self._raw.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        self._counter.inc()
        message = self._decode(raw, self.index)
        self.index += 1
        return message

    async def drain(self, ctx: Context) -> None:
        """Reads and drops the rest of the stream, for at most _DRAIN_S and _DRAIN_BYTES."""
        if self.ended:
            return
        deadline = time.monotonic() + _DRAIN_S
        size = 0
        try:
            while size < _DRAIN_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                message = await asyncio.wait_for(ctx.read(), left)
                if message is grpc.aio.EOF:
                    return
                size += len(message)
        except Exception:  # the peer left, or the stream is unreadable: stop
            return


def _wrap_unary_response(
    behavior: Callable[..., Awaitable[Any]], m: _MethodMetrics, streaming_in: bool,
    decode: RequestDecoder,
) -> Callable[..., Awaitable[Any]]:
    method = m.method

    async def handler(raw: Any, ctx: Context) -> Any:
        _enter(ctx)
        started = time.perf_counter()
        m.started.inc()
        stream = RequestStream(raw, decode, m.received) if streaming_in else None
        try:
            response = await behavior(stream if stream is not None else decode(raw), ctx)
        except grpc.aio.AbortError:
            if stream is not None:
                await stream.drain(ctx)
            m.finish(_code_after_abort(ctx), started)
            raise
        except asyncio.CancelledError:
            m.finish(grpc.StatusCode.CANCELLED, started)
            raise
        except Exception as error:
            code, message = _status_for(error, method)
            if stream is not None:
                await stream.drain(ctx)
            m.finish(code, started)
            await ctx.abort(code, message)
        m.finish(grpc.StatusCode.OK, started)
        return response

    return handler


def _wrap_stream_response(
    behavior: Callable[..., Any], m: _MethodMetrics, streaming_in: bool,
    decode: RequestDecoder,
) -> Callable[..., Any]:
    method = m.method

    async def handler(raw: Any, ctx: Context) -> AsyncIterator[Any]:
        _enter(ctx)
        started = time.perf_counter()
        m.started.inc()
        stream = RequestStream(raw, decode, m.received) if streaming_in else None
        try:
            async for response in behavior(stream if stream is not None else decode(raw),
                                           ctx):
                m.sent.inc()
                yield response
        except grpc.aio.AbortError:
            if stream is not None:
                await stream.drain(ctx)
            m.finish(_code_after_abort(ctx), started)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            m.finish(grpc.StatusCode.CANCELLED, started)
            raise
        except Exception as error:
            code, message = _status_for(error, method)
            if stream is not None:
                await stream.drain(ctx)
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
    ser, de = handler.response_serializer, RequestDecoder(handler.request_deserializer)
    behavior: Any  # the stubs type behaviours as sync callables; ours are coroutines
    if handler.response_streaming:
        behavior = handler.stream_stream if streaming_in else handler.unary_stream
        if not inspect.isasyncgenfunction(behavior):
            # Handlers that write with ctx.write() are left as they are.
            return handler
        wrapped = _wrap_stream_response(behavior, _MethodMetrics(method, kind), streaming_in, de)
        make = (grpc.stream_stream_rpc_method_handler if streaming_in
                else grpc.unary_stream_rpc_method_handler)
    else:
        behavior = handler.stream_unary if streaming_in else handler.unary_unary
        wrapped = _wrap_unary_response(behavior, _MethodMetrics(method, kind), streaming_in, de)
        make = (grpc.stream_unary_rpc_method_handler if streaming_in
                else grpc.unary_unary_rpc_method_handler)
    # No request_deserializer: the wrapper decodes (see RequestDecoder).
    return make(wrapped, request_deserializer=None, response_serializer=ser)
