"""Request bodies that do not decode: INVALID_ARGUMENT, counted, one log line, any call shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from prometheus_client import REGISTRY

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.server import App, Binding, serve_in_process

# Field 1 of StringValue as a length-delimited string that is not UTF-8: protobuf refuses it.
_JUNK = bytes.fromhex("0a02ff fe".replace(" ", ""))
_GOOD = wrappers_pb2.StringValue(value="ok").SerializeToString()
_SHAPES = {"Unary": (False, False), "ServerStream": (False, True),
           "ClientStream": (True, False), "BidiStream": (True, True)}


async def _unary(request: wrappers_pb2.StringValue, ctx: object) -> wrappers_pb2.StringValue:
    return request


async def _server_stream(request: wrappers_pb2.StringValue,
                         ctx: object) -> AsyncIterator[wrappers_pb2.StringValue]:
    yield request


async def _client_stream(requests: AsyncIterator[wrappers_pb2.StringValue],
                         ctx: object) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value="".join([r.value async for r in requests]))


async def _bidi_stream(requests: AsyncIterator[wrappers_pb2.StringValue],
                       ctx: object) -> AsyncIterator[wrappers_pb2.StringValue]:
    async for request in requests:
        yield request


def _app() -> App:
    de, ser = wrappers_pb2.StringValue.FromString, wrappers_pb2.StringValue.SerializeToString
    handler = grpc.method_handlers_generic_handler("test.Decode", {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, de, ser),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream, de, ser),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream, de, ser),
        "BidiStream": grpc.stream_stream_rpc_method_handler(_bidi_stream, de, ser),
    })
    return App(bindings=[Binding("test.Decode",
                                 lambda server: server.add_generic_rpc_handlers((handler,)))])


def _handled(method: str, code: str) -> float:
    kind = {"Unary": "unary", "ServerStream": "server_stream", "ClientStream": "client_stream",
            "BidiStream": "bidi_stream"}[method]
    value = REGISTRY.get_sample_value("grpc_server_handled_total", {
        "grpc_type": kind, "grpc_service": "test.Decode", "grpc_method": method,
        "grpc_code": code})
    return value or 0.0


async def _call(channel: grpc.aio.Channel, method: str, bodies: list[bytes]) -> list[bytes]:
    streaming_in, streaming_out = _SHAPES[method]
    path = f"/test.Decode/{method}"
    if not streaming_in and not streaming_out:
        return [await channel.unary_unary(path)(bodies[0], timeout=5)]
    if not streaming_in:
        return [r async for r in channel.unary_stream(path)(bodies[0], timeout=5)]
    if not streaming_out:
        return [await channel.stream_unary(path)(iter(bodies), timeout=5)]
    return [r async for r in channel.stream_stream(path)(iter(bodies), timeout=5)]


@pytest.mark.parametrize("method", list(_SHAPES))
async def test_an_undecodable_body_is_invalid_argument_counted_and_logged_once(
        method: str, caplog: pytest.LogCaptureFixture) -> None:
    server = await serve_in_process(_app())
    before = _handled(method, "INVALID_ARGUMENT")
    # Streams get a good message first: the bad one fails the call wherever it comes.
    bodies = [_GOOD, _JUNK] if _SHAPES[method][0] else [_JUNK]
    with caplog.at_level(logging.INFO):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, method, bodies)
            assert await _call(channel, method, [_GOOD]) == [_GOOD]  # still serving
    await server.server.stop(None)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid google.protobuf.StringValue message" in caught.value.details()
    if _SHAPES[method][0]:
        assert caught.value.details().startswith("message 1 of the request stream")
    assert _handled(method, "INVALID_ARGUMENT") == before + 1
    lines = [r for r in caplog.records if "not a valid" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"


async def test_a_client_still_writing_when_the_call_fails_gets_the_real_status() -> None:
    # The handler rejects the first message; the client has 40 more to write. A grpc.aio
    # client mid-write when the status arrives reports INTERNAL (grpc/grpc#36066) unless
    # the server reads the rest first.
    async def reject_first(requests: AsyncIterator[wrappers_pb2.StringValue],
                           ctx: object) -> wrappers_pb2.StringValue:
        async for _ in requests:
            raise InvalidArgument("value", "not this one")
        return wrappers_pb2.StringValue()

    de, ser = wrappers_pb2.StringValue.FromString, wrappers_pb2.StringValue.SerializeToString
    handler = grpc.method_handlers_generic_handler("test.Early", {
        "Reject": grpc.stream_unary_rpc_method_handler(reject_first, de, ser)})
    server = await serve_in_process(App(bindings=[Binding(
        "test.Early", lambda s: s.add_generic_rpc_handlers((handler,)))]))
    chunk = wrappers_pb2.StringValue(value="x" * 16_384).SerializeToString()
    codes = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_unary("/test.Early/Reject")
        for _ in range(30):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(iter([chunk] * 41), timeout=10)
            codes.append(caught.value.code())
    await server.server.stop(None)
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}, codes
