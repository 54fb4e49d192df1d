"""The shared interceptor: errors become clean status codes, calls are counted, context flows."""

from __future__ import annotations

import asyncio
import json

import grpc
import grpc.aio
import pytest
from prometheus_client import REGISTRY

from cadenza.kit import context
from cadenza.kit.channels import open_channel
from cadenza.kit.errors import InvalidArgument, NotFound
from cadenza.kit.server import App, Binding, serve_in_process


def _app(**methods: object) -> App:
    handler = grpc.method_handlers_generic_handler("test.Kit", {
        name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()})
    return App(bindings=[Binding("test.Kit",
                                 lambda server: server.add_generic_rpc_handlers((handler,)))])


def _handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value("grpc_server_handled_total", {
        "grpc_type": "unary", "grpc_service": "test.Kit", "grpc_method": method,
        "grpc_code": code})
    return value or 0.0


async def test_domain_errors_map_to_their_status_code_and_message() -> None:
    async def missing(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise NotFound("track 'x' is not in the catalog")

    async def invalid(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise InvalidArgument("filter.year.min", "must be <= filter.year.max")

    server = await serve_in_process(_app(Missing=missing, Invalid=invalid))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Kit/Missing")(b"")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "track 'x' is not in the catalog"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Kit/Invalid")(b"")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith("filter.year.min: ")
    await server.server.stop(None)


async def test_unexpected_exceptions_are_internal_without_internals() -> None:
    async def broken(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("password=hunter2 in /etc/secret")

    server = await serve_in_process(_app(Broken=broken))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Kit/Broken")(
                b"", metadata=((context.REQUEST_ID_KEY, "req-42"),))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in caught.value.details()
    assert "req-42" in caught.value.details()
    await server.server.stop(None)


async def test_handled_calls_are_counted_by_method_and_code() -> None:
    async def ok(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        return b"ok"

    async def missing(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise NotFound("nope")

    before_ok, before_nf = _handled("Ok", "OK"), _handled("Missing", "NOT_FOUND")
    server = await serve_in_process(_app(Ok=ok, Missing=missing))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for _ in range(3):
            await channel.unary_unary("/test.Kit/Ok")(b"")
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary("/test.Kit/Missing")(b"")
    assert _handled("Ok", "OK") == before_ok + 3
    assert _handled("Missing", "NOT_FOUND") == before_nf + 1
    await server.server.stop(None)


async def test_request_id_and_deadline_follow_the_call_to_the_next_hop() -> None:
    async def inner(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        metadata = dict(ctx.invocation_metadata() or ())
        return json.dumps({"rid": metadata.get(context.REQUEST_ID_KEY),
                           "left": ctx.time_remaining()}).encode()

    downstream = await serve_in_process(_app(Inner=inner))
    channel = open_channel(f"127.0.0.1:{downstream.port}")

    async def outer(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        # No timeout given here: the caller's deadline must still apply.
        return bytes(await channel.unary_unary("/test.Kit/Inner")(b""))

    upstream = await serve_in_process(_app(Outer=outer))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{upstream.port}") as client:
        reply = json.loads(await client.unary_unary("/test.Kit/Outer")(
            b"", timeout=5, metadata=((context.REQUEST_ID_KEY, "trace-me"),)))
    assert reply["rid"] == "trace-me"
    # gRPC carries deadlines with some rounding; without propagation there would be none.
    assert reply["left"] is not None and 3 < reply["left"] <= 5.1
    await channel.close()
    await upstream.server.stop(None)
    await downstream.server.stop(None)


async def test_an_expired_caller_deadline_cancels_the_downstream_call() -> None:
    cancelled = asyncio.Event()

    async def slow(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"late"

    downstream = await serve_in_process(_app(Slow=slow))
    channel = open_channel(f"127.0.0.1:{downstream.port}")

    async def outer(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        return bytes(await channel.unary_unary("/test.Kit/Slow")(b""))

    upstream = await serve_in_process(_app(Outer=outer))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{upstream.port}") as client:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.unary_unary("/test.Kit/Outer")(b"", timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The downstream work stops at the caller's deadline, not after its own 5 s.
    await asyncio.wait_for(cancelled.wait(), timeout=2)
    await channel.close()
    await upstream.server.stop(None)
    await downstream.server.stop(None)


async def test_long_error_messages_are_cut_to_fit_in_trailers() -> None:
    async def echo(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise InvalidArgument("name", f"{'x' * 100_000!r} is not a name")

    server = await serve_in_process(_app(Echo=echo))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Kit/Echo")(b"")
    await server.server.stop(None)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details()
    assert details.startswith("name: 'xxx") and details.endswith("...")
    assert len(details) <= 1024 + 3


async def test_non_ascii_error_messages_are_cut_by_bytes_so_the_status_survives() -> None:
    # gRPC percent-encodes non-ASCII bytes: 1,024 CJK characters are 9 KiB of trailers,
    # over the client's 8 KiB cap, and the caller used to see RESOURCE_EXHAUSTED.
    async def echo(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        raise NotFound(f"model {'模' * 100_000!r} does not exist")

    server = await serve_in_process(_app(Echo=echo))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Kit/Echo")(b"")
    await server.server.stop(None)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    details = caught.value.details()
    assert details.startswith("model '模模") and details.endswith("...")
    assert len(details.encode()) <= 1024 + 3
