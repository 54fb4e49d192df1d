"""Long-running operations through the production gateway, over its real store, in front
of test backends that report what reached them: start, follow, list, cancel (the
backend's work stops), per-tenant isolation, quotas, expiry, and resuming after a restart
or a SIGKILL of the gateway that ran them."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.kit.server import App, Binding, serve_in_process
from cadenza.recommend.v1 import recommend_pb2
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.store import Quota, Store
from gateway.store.sql import open_store
from tests.gateway.public_path import (
    GENERATE,
    RETRIEVAL,
    CountingGenerate,
    EchoRetrieval,
    Mesh,
    start,
)
from tests.gateway.test_replicas import Gateway, gateway_env
from tests.support.tenants import add_key, add_tenant, bearer

GENERATE_METHOD = "/cadenza.generate.v1.GenerateService/Generate"
INGEST_METHOD = "/cadenza.retrieval.v1.RetrievalService/IngestTrack"
FAST = dict(operation_poll_s=0.1, operation_lease_s=2.0)


def packed(*messages: object) -> gateway_pb2.OperationCall:
    call = gateway_pb2.OperationCall()
    for message in messages:
        holder = any_pb2.Any()
        holder.Pack(message)  # type: ignore[arg-type]
        call.messages.append(holder)
    return call


def generation(bars: int) -> gateway_pb2.StartOperationRequest:
    return gateway_pb2.StartOperationRequest(
        method=GENERATE_METHOD, calls=[packed(generate_pb2.GenerateRequest(bars=bars))])


def metadata_of(operation: operations_pb2.Operation) -> gateway_pb2.OperationMetadata:
    metadata = gateway_pb2.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


class Client:
    """StartOperation and google.longrunning.Operations with one tenant's key."""

    def __init__(self, channel: grpc.aio.Channel, secret: str) -> None:
        self.metadata = bearer(secret)
        self.gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsStub(channel)

    async def start(self, request: gateway_pb2.StartOperationRequest
                    ) -> operations_pb2.Operation:
        return await self.gateway.StartOperation(request, metadata=self.metadata, timeout=10)

    async def get(self, name: str) -> operations_pb2.Operation:
        return await self.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=self.metadata, timeout=10)

    async def wait(self, name: str, seconds: float = 20) -> operations_pb2.Operation:
        request = operations_pb2.WaitOperationRequest(name=name)
        request.timeout.CopyFrom(duration_pb2.Duration(seconds=int(seconds)))
        return await self.operations.WaitOperation(request, metadata=self.metadata,
                                                   timeout=seconds + 10)

    async def cancel(self, name: str) -> None:
        await self.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=name), metadata=self.metadata,
            timeout=10)

    async def until_running(self, name: str) -> gateway_pb2.OperationMetadata:
        for _ in range(200):
            metadata = metadata_of(await self.get(name))
            if metadata.state == gateway_pb2.OPERATION_STATE_RUNNING and metadata.messages:
                return metadata
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never ran: {metadata}")


@pytest.fixture
async def keyed(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Mesh, Store, Client, Client]]:
    mesh = await start("forwarder", tmp_path, keys=True, **FAST)  # type: ignore[arg-type]
    store = await open_store(str(tmp_path / "gateway.db"))
    await add_tenant(store, "acme")
    await add_tenant(store, "beta")
    _, acme = await add_key(store, "acme")
    _, beta = await add_key(store, "beta")
    yield mesh, store, Client(mesh.channel, acme), Client(mesh.channel, beta)
    await store.close()
    await mesh.close()


async def test_an_operation_runs_reports_progress_and_keeps_its_result(
        keyed: tuple[Mesh, Store, Client, Client]) -> None:
    _, store, acme, _ = keyed
    started = await acme.start(generation(bars=40))  # 40 events, 2 s
    assert started.name.startswith("operations/") and not started.done
    assert metadata_of(started).tenant == "acme"
    running = await acme.until_running(started.name)
    assert 0 < running.progress < 1 and running.attempts == 1

    done = await acme.wait(started.name)
    assert done.done and not done.HasField("error"), done
    metadata = metadata_of(done)
    assert metadata.state == gateway_pb2.OPERATION_STATE_SUCCEEDED
    assert (metadata.calls_done, metadata.calls, metadata.progress) == (1, 1, 1.0)
    assert metadata.messages == 41 and metadata.HasField("expire_time")
    result = gateway_pb2.OperationResult()
    assert done.response.Unpack(result)
    piece = generate_pb2.GenerateResponse()
    assert result.responses[0].Unpack(piece) and piece.result.seed == 7  # the last message
    assert await acme.get(started.name) == done  # kept
    # Metered like a direct call, to the tenant and key that started it, under its id.
    rows = await store.usage("acme", None, None, ["method", "code"])
    assert [(r.method, r.code, r.calls) for r in rows] == [(GENERATE_METHOD, "OK", 1)]


async def test_cancel_stops_the_work_in_the_backend(
        keyed: tuple[Mesh, Store, Client, Client]) -> None:
    mesh, _, acme, _ = keyed
    started = await acme.start(generation(bars=2000))  # 100 s if not stopped
    await acme.until_running(started.name)
    await acme.cancel(started.name)
    await asyncio.wait_for(mesh.generator.cancelled.wait(), 10)  # the backend saw it
    done = await acme.wait(started.name)
    assert done.done and done.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert metadata_of(done).state == gateway_pb2.OPERATION_STATE_CANCELLED
    await acme.cancel(started.name)  # cancelling a finished operation changes nothing
    assert (await acme.get(started.name)).error.code == grpc.StatusCode.CANCELLED.value[0]


async def test_a_catalogue_import_is_one_call_per_track(
        keyed: tuple[Mesh, Store, Client, Client]) -> None:
    _, _, acme, _ = keyed
    tracks = [packed(retrieval_pb2.IngestTrackRequest(header=retrieval_pb2.IngestHeader(
        metadata=retrieval_pb2.TrackMetadata(track_id=f"t{i}"))),
        *(retrieval_pb2.IngestTrackRequest(audio_chunk=b"x" * 100) for _ in range(i + 1)))
        for i in range(3)]
    started = await acme.start(gateway_pb2.StartOperationRequest(method=INGEST_METHOD,
                                                                 calls=tracks))
    done = await acme.wait(started.name)
    result = gateway_pb2.OperationResult()
    assert done.response.Unpack(result), done
    ingested = []
    for response in result.responses:
        track = retrieval_pb2.IngestTrackResponse()
        assert response.Unpack(track)
        ingested.append((track.track.metadata.track_id, track.track.metadata.title))
    assert ingested == [("t0", "100"), ("t1", "200"), ("t2", "300")]
    assert metadata_of(done).calls_done == 3


async def test_operations_belong_to_their_tenant(
        keyed: tuple[Mesh, Store, Client, Client]) -> None:
    mesh, store, acme, beta = keyed
    mine = await acme.start(generation(bars=2))
    await acme.wait(mine.name)
    for call in (beta.get, beta.wait, beta.cancel):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(mine.name)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, call
        assert "acme" not in (caught.value.details() or "")
    listed = await beta.operations.ListOperations(operations_pb2.ListOperationsRequest(),
                                                  metadata=beta.metadata, timeout=10)
    assert list(listed.operations) == []
    listed = await acme.operations.ListOperations(
        operations_pb2.ListOperationsRequest(filter="done=true"), metadata=acme.metadata,
        timeout=10)
    assert [op.name for op in listed.operations] == [mine.name]

    _, search_only = await add_key(store, "acme", scopes=("search",))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await Client(mesh.channel, search_only).start(generation(bars=2))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'generate' scope" in (caught.value.details() or "")


async def test_bad_requests_say_what_to_fix(keyed: tuple[Mesh, Store, Client, Client]) -> None:
    _, _, acme, _ = keyed
    lyrics = packed(generate_pb2.WriteLyricsRequest())
    cases = [
        (gateway_pb2.StartOperationRequest(method="/nope.Service/Do", calls=[lyrics]),
         "is not a public method"),
        (gateway_pb2.StartOperationRequest(method=GENERATE_METHOD), "calls"),
        (gateway_pb2.StartOperationRequest(method=GENERATE_METHOD, calls=[lyrics]),
         "takes a cadenza.generate.v1.GenerateRequest"),
        (gateway_pb2.StartOperationRequest(method=GENERATE_METHOD, calls=[packed(
            generate_pb2.GenerateRequest(), generate_pb2.GenerateRequest())]),
         "one request per call"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await acme.start(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert message in (caught.value.details() or ""), caught.value.details()
    for name, code in (("jobs/1", grpc.StatusCode.INVALID_ARGUMENT),
                       ("operations/unknown", grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await acme.get(name)
        assert caught.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await acme.operations.ListOperations(
            operations_pb2.ListOperationsRequest(filter="state=RUNNING"),
            metadata=acme.metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "done=true" in (caught.value.details() or "")
    running = await acme.start(generation(bars=400))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await acme.operations.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=running.name), metadata=acme.metadata,
            timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await acme.cancel(running.name)


async def test_a_backend_error_fails_the_operation_with_its_status(
        keyed: tuple[Mesh, Store, Client, Client]) -> None:
    _, store, acme, _ = keyed
    started = await acme.start(gateway_pb2.StartOperationRequest(
        method="/cadenza.generate.v1.GenerateService/WriteLyrics",
        calls=[packed(generate_pb2.WriteLyricsRequest())]))
    done = await acme.wait(started.name)
    assert done.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "model reloading" in done.error.message
    assert metadata_of(done).state == gateway_pb2.OPERATION_STATE_FAILED

    # Training returns at once unless it waits: an operation always makes it wait, so
    # the operation ends with the run. (Recommend is not running here.)
    started = await acme.start(gateway_pb2.StartOperationRequest(
        method="/cadenza.recommend.v1.RecommendService/TrainModel",
        calls=[packed(recommend_pb2.TrainModelRequest(algorithm="als"))]))
    done = await acme.wait(started.name)
    assert done.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "recommend backend" in done.error.message
    stored = await store.get_operation(started.name)
    assert stored is not None
    sent = gateway_pb2.StartOperationRequest.FromString(stored.request)
    train = recommend_pb2.TrainModelRequest()
    assert sent.calls[0].messages[0].Unpack(train) and train.wait and train.algorithm == "als"


async def test_over_quota_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    mesh = await start("forwarder", tmp_path, keys=True, **FAST)  # type: ignore[arg-type]
    store = await open_store(str(tmp_path / "gateway.db"))
    try:
        await add_tenant(store, "acme", [Quota("cadenza-poly", requests_per_minute=1)])
        _, secret = await add_key(store, "acme")
        acme = Client(mesh.channel, secret)
        await acme.start(generation(bars=1))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await acme.start(generation(bars=1))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = {key: value for key, value in caught.value.trailing_metadata() or ()}
        from google.rpc import status_pb2
        status = status_pb2.Status.FromString(details["grpc-status-details-bin"])
        failure = error_details_pb2.QuotaFailure()
        assert any(d.Unpack(failure) for d in status.details)
        assert "cadenza-poly" in failure.violations[0].subject
    finally:
        await store.close()
        await mesh.close()


async def test_a_finished_operation_is_forgotten_after_its_retention(
        tmp_path: pathlib.Path) -> None:
    mesh = await start("forwarder", tmp_path, keys=True, operation_retention_s=1.0,
                       **FAST)  # type: ignore[arg-type]
    store = await open_store(str(tmp_path / "gateway.db"))
    try:
        await add_tenant(store, "acme")
        _, secret = await add_key(store, "acme")
        acme = Client(mesh.channel, secret)
        done = await acme.wait((await acme.start(generation(bars=1))).name)
        assert done.done
        await asyncio.sleep(1.2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await acme.get(done.name)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "expired" in (caught.value.details() or "")
    finally:
        await store.close()
        await mesh.close()


async def test_an_operation_survives_a_restart_of_its_gateway(tmp_path: pathlib.Path) -> None:
    mesh = await start("forwarder", tmp_path, keys=True, **FAST)  # type: ignore[arg-type]
    store = await open_store(str(tmp_path / "gateway.db"))
    await add_tenant(store, "acme")
    _, secret = await add_key(store, "acme")
    started = await Client(mesh.channel, secret).start(generation(bars=60))  # 3 s
    await Client(mesh.channel, secret).until_running(started.name)
    await mesh.stop_gateway()
    queued = await store.get_operation(started.name)
    assert queued is not None and not queued.done
    again = await start("forwarder", tmp_path, keys=True, **FAST)  # type: ignore[arg-type]
    try:
        done = await Client(again.channel, secret).wait(started.name)
        assert done.done and not done.HasField("error"), done
        assert metadata_of(done).attempts == 2
        for _ in range(50):  # the settlement is written in the background
            rows = await store.usage("acme", None, None, ["method", "code"])
            if all(r.code for r in rows):
                break
            await asyncio.sleep(0.1)
        # Charged once, as the run that finished (the interrupted one left it reserved).
        assert [(r.method, r.code, r.calls) for r in rows] == [(GENERATE_METHOD, "OK", 1)]
    finally:
        await store.close()
        await again.close()
        await mesh.close()


async def test_another_gateway_takes_over_when_the_first_is_killed(
        tmp_path: pathlib.Path) -> None:
    generator, retriever = CountingGenerate(), EchoRetrieval()
    backend = await serve_in_process(App(bindings=[
        Binding(GENERATE, lambda s: (
            generate_pb2_grpc.add_GenerateServiceServicer_to_server(generator, s))),
        Binding(RETRIEVAL, lambda s: (
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(retriever, s)))]))
    store_path = str(tmp_path / "gateway.db")
    store = await open_store(store_path)
    await add_tenant(store, "acme")
    _, secret = await add_key(store, "acme")
    env = gateway_env(backend, store_path)
    env["CADENZA_GATEWAY_GENERATE_ADDRESS"] = f"127.0.0.1:{backend.port}"
    env.update(CADENZA_GATEWAY_OPERATION_POLL_S="0.1", CADENZA_GATEWAY_OPERATION_LEASE_S="1")
    first, second = Gateway(tmp_path / "first.log", env), Gateway(tmp_path / "second.log", env)
    try:
        await first.ready()
        async with grpc.aio.insecure_channel(first.address) as channel:
            started = await Client(channel, secret).start(generation(bars=80))  # 4 s
            await Client(channel, secret).until_running(started.name)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        await second.ready()
        begun = time.monotonic()
        async with grpc.aio.insecure_channel(second.address) as channel:
            done = await Client(channel, secret).wait(started.name, 30)
        assert done.done and not done.HasField("error"), done
        assert metadata_of(done).attempts == 2
        assert time.monotonic() - begun < 25
        for _ in range(50):  # the settlement is written in the background
            rows = await store.usage("acme", None, None, ["method", "code"])
            if all(r.code for r in rows):
                break
            await asyncio.sleep(0.1)
        assert [(r.method, r.code, r.calls) for r in rows] == [(GENERATE_METHOD, "OK", 1)]
    finally:
        first.stop()
        second.stop()
        await store.close()
        await backend.server.stop(None)


async def test_rest_starts_and_follows_an_operation(tmp_path: pathlib.Path) -> None:
    mesh = await start("envoy", tmp_path, keys=True, **FAST)  # type: ignore[arg-type]
    store = await open_store(str(tmp_path / "gateway.db"))
    try:
        await add_tenant(store, "acme")
        _, secret = await add_key(store, "acme")
        assert mesh.edge is not None
        base = f"http://{mesh.edge.address}"
        headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
        body = json.dumps({"method": GENERATE_METHOD, "calls": [{"messages": [{
            "@type": "type.googleapis.com/cadenza.generate.v1.GenerateRequest",
            "bars": 2}]}]}).encode()

        def call(method: str, path: str, data: bytes | None = None) -> dict[str, object]:
            request = urllib.request.Request(base + path, data=data, method=method,
                                             headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=20) as reply:
                    return json.loads(reply.read())  # type: ignore[no-any-return]
            except urllib.error.HTTPError as error:
                raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None

        started = await asyncio.to_thread(call, "POST", "/v1/operations:start", body)
        name = str(started["name"])
        for _ in range(100):
            got = await asyncio.to_thread(call, "GET", f"/v1/{name}")
            if got.get("done"):
                break
            await asyncio.sleep(0.1)
        assert got["done"] and got["metadata"]["state"] == "OPERATION_STATE_SUCCEEDED", got  # type: ignore[index]
        listed = await asyncio.to_thread(call, "GET", "/v1/operations")
        assert [op["name"] for op in listed["operations"]] == [name]  # type: ignore[union-attr,index]
    finally:
        await store.close()
        await mesh.close()
