"""The public path forwards every call shape unchanged, with deadline, request id and errors.

Each behaviour runs on both public paths: Envoy (the edge, a real process, with the
gateway as its control plane) and the gateway's own Python forwarder. The gateway is the
production one (build_gateway + its access interceptor on the shared server factory);
the backends are small servicers that report what reached them.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.kit import context
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.gateway.public_path import RETRIEVAL, Mesh, start

PATHS = ("envoy", "forwarder")


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def mesh(path: str, tmp_path: pathlib.Path) -> AsyncIterator[Mesh]:
    running = await start(path, tmp_path)
    yield running
    await running.close()


async def usage_rows(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = (),
                     want: int = 1) -> dict[tuple[str, str], int]:
    """GetUsage's rows once `want` calls are metered (Envoy's log arrives in batches)."""
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    request = gateway_pb2.GetUsageRequest(group_by=[gateway_pb2.USAGE_GROUP_METHOD,
                                                    gateway_pb2.USAGE_GROUP_CODE])
    for _ in range(100):
        usage = await stub.GetUsage(request, timeout=5, metadata=metadata)
        rows = {(m.method, m.code): m.calls for m in usage.rows}
        if sum(rows.values()) >= want:
            return rows
        await asyncio.sleep(0.05)
    return rows


async def test_backend_status_and_message_pass_through_unchanged(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="missing"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "track 'missing' is not in the catalog"


async def test_rich_error_details_reach_the_caller(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="rich"), timeout=5)
    trailers = dict(caught.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    violation = error_details_pb2.BadRequest()
    status.details[0].Unpack(violation)
    assert violation.field_violations[0].field == "track_id"


async def test_deadline_and_request_id_reach_the_backend(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    reply = await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="t1"), timeout=4,
                                metadata=((context.REQUEST_ID_KEY, "abc123"),))
    seen = json.loads(reply.track.metadata.title)
    assert seen["rid"] == "abc123"
    assert 2 < seen["left"] <= 4.1  # the default would be 30


async def test_calls_without_deadline_get_the_gateway_default(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    reply = await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="t1"))
    seen = json.loads(reply.track.metadata.title)
    assert seen["rid"]  # one was made up
    assert 25 < seen["left"] <= 30.1


async def test_client_stream_is_forwarded_in_order(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)

    async def parts() -> AsyncIterator[retrieval_pb2.IngestTrackRequest]:
        yield retrieval_pb2.IngestTrackRequest(header=retrieval_pb2.IngestHeader(
            metadata=retrieval_pb2.TrackMetadata(track_id="t9", title="x")))
        for _ in range(5):
            yield retrieval_pb2.IngestTrackRequest(audio_chunk=b"\0" * 100_000)

    reply = await stub.IngestTrack(parts(), timeout=10)
    assert reply.track.metadata.track_id == "t9"
    assert reply.track.metadata.title == "500000"


async def test_server_stream_is_forwarded_and_cancel_reaches_the_backend(mesh: Mesh) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(mesh.channel)
    replies = [r async for r in stub.Generate(generate_pb2.GenerateRequest(bars=3), timeout=10)]
    assert [r.event.pitch for r in replies[:3]] == [60, 61, 62]
    assert replies[-1].result.seed == 7

    call = stub.Generate(generate_pb2.GenerateRequest(bars=1000), timeout=30)
    async for _ in call:
        break
    call.cancel()
    await asyncio.wait_for(mesh.generator.cancelled.wait(), timeout=5)


async def test_unreachable_backend_is_named_and_the_gateway_keeps_serving(mesh: Mesh) -> None:
    from cadenza.recommend.v1 import recommend_pb2, recommend_pb2_grpc

    stub = recommend_pb2_grpc.RecommendServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetModelStatus(recommend_pb2.GetModelStatusRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "recommend backend" in caught.value.details()

    report = await gateway_pb2_grpc.GatewayServiceStub(mesh.channel).CheckMesh(
        gateway_pb2.CheckMeshRequest(), timeout=5)
    status = {b.name: b.status for b in report.backends}
    assert status == {"retrieval": gateway_pb2.SERVING_STATUS_SERVING,
                      "generate": gateway_pb2.SERVING_STATUS_SERVING,
                      "recommend": gateway_pb2.SERVING_STATUS_UNREACHABLE}
    retrieval = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    assert (await retrieval.GetTrack(retrieval_pb2.GetTrackRequest(track_id="ok"),
                                     timeout=5)).track.metadata.track_id == "ok"


async def test_gateway_health_covers_its_backends(mesh: Mesh) -> None:
    health = health_pb2_grpc.HealthStub(mesh.channel)

    async def status(service: str) -> int:
        for _ in range(50):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            if reply.status != health_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
                return int(reply.status)
            await asyncio.sleep(0.05)
        raise AssertionError(service)

    serving = health_pb2.HealthCheckResponse.SERVING
    await asyncio.sleep(0.3)  # the watchers' first answers
    assert await status("cadenza.gateway.v1.GatewayService") == serving
    assert await status(RETRIEVAL) == serving
    assert await status("cadenza.recommend.v1.RecommendService") != serving
    assert await status("") != serving  # one backend is down


async def test_idempotent_calls_are_retried_and_others_are_not(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    reply = await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="flaky1"), timeout=5)
    assert reply.track.metadata.track_id == "flaky1"
    assert mesh.retriever.attempts["flaky1"] == 2
    generate = generate_pb2_grpc.GenerateServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate.WriteLyrics(generate_pb2.WriteLyricsRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details().endswith("model reloading")
    assert mesh.generator.lyrics_attempts == 1


async def test_usage_is_metered_per_method_and_code(mesh: Mesh) -> None:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="t1"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="missing"), timeout=5)
    rows = await usage_rows(mesh.channel, want=2)
    assert rows == {(f"/{RETRIEVAL}/GetTrack", "OK"): 1,
                    (f"/{RETRIEVAL}/GetTrack", "NOT_FOUND"): 1}


