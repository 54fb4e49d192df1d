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
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.kit import context
from cadenza.kit.errors import NotFound
from cadenza.kit.server import App, Binding, RunningServer, serve_in_process
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.access import Access, AccessInterceptor
from gateway.app import build_gateway
from gateway.settings import GatewaySettings
from tests.support.edge import Edge
from tools.devmesh import free_port

RETRIEVAL = "cadenza.retrieval.v1.RetrievalService"
GENERATE = "cadenza.generate.v1.GenerateService"


class EchoRetrieval(retrieval_pb2_grpc.RetrievalServiceServicer):
    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    async def GetTrack(self, request: retrieval_pb2.GetTrackRequest,
                       ctx: grpc.aio.ServicerContext) -> retrieval_pb2.GetTrackResponse:
        self.attempts[request.track_id] += 1
        if request.track_id.startswith("flaky") and self.attempts[request.track_id] == 1:
            await ctx.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        if request.track_id == "missing":
            raise NotFound("track 'missing' is not in the catalog")
        if request.track_id == "rich":
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="track_id",
                                                            description="rich")]))
            await ctx.abort_with_status(rpc_status.to_status(status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="track_id: rich", details=[detail])))
        seen = {"rid": dict(ctx.invocation_metadata() or ()).get(context.REQUEST_ID_KEY),
                "left": ctx.time_remaining(),
                "auth": dict(ctx.invocation_metadata() or ()).get("authorization")}
        return retrieval_pb2.GetTrackResponse(track=retrieval_pb2.Track(
            metadata=retrieval_pb2.TrackMetadata(track_id=request.track_id,
                                                 title=json.dumps(seen))))

    async def IngestTrack(self, request_iterator: AsyncIterator[retrieval_pb2.IngestTrackRequest],
                          ctx: grpc.aio.ServicerContext) -> retrieval_pb2.IngestTrackResponse:
        header, size = None, 0
        async for part in request_iterator:
            if part.HasField("header"):
                header = part.header
            else:
                size += len(part.audio_chunk)
        assert header is not None
        return retrieval_pb2.IngestTrackResponse(track=retrieval_pb2.Track(
            metadata=retrieval_pb2.TrackMetadata(track_id=header.metadata.track_id,
                                                 title=str(size))))


class CountingGenerate(generate_pb2_grpc.GenerateServiceServicer):
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.lyrics_attempts = 0

    async def WriteLyrics(self, request: generate_pb2.WriteLyricsRequest,
                          ctx: grpc.aio.ServicerContext) -> generate_pb2.WriteLyricsResponse:
        # Not idempotent: a repeat would be a second (billed) generation.
        self.lyrics_attempts += 1
        await ctx.abort(grpc.StatusCode.UNAVAILABLE, "model reloading")

    async def Generate(self, request: generate_pb2.GenerateRequest,
                       ctx: grpc.aio.ServicerContext
                       ) -> AsyncIterator[generate_pb2.GenerateResponse]:
        try:
            for i in range(request.bars):
                yield generate_pb2.GenerateResponse(event=generate_pb2.NoteEvent(pitch=60 + i))
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        yield generate_pb2.GenerateResponse(result=generate_pb2.GenerationResult(seed=7))


class Mesh:
    """Envoy and the gateway in front of the two test backends (recommend left
    unreachable); `channel` is on the public path under test."""

    def __init__(self, gateway: RunningServer, retrieval: RunningServer,
                 generate: RunningServer, generator: CountingGenerate,
                 retriever: EchoRetrieval, edge: Edge | None) -> None:
        self.gateway, self.retrieval, self.generate = gateway, retrieval, generate
        self.generator, self.retriever = generator, retriever
        self.edge = edge
        public = edge.address if edge else f"127.0.0.1:{gateway.port}"
        self.channel = grpc.aio.insecure_channel(public)

    async def close(self) -> None:
        await self.channel.close()
        if self.edge:
            self.edge.stop()
        for server in (self.gateway, self.retrieval, self.generate):
            await server.server.stop(None)


async def _backend(name: str, add: object) -> RunningServer:
    return await serve_in_process(App(bindings=[Binding(name, add)]))  # type: ignore[arg-type]


async def start(path: str, run_dir: pathlib.Path, **overrides: object) -> Mesh:
    generator, retriever = CountingGenerate(), EchoRetrieval()
    retrieval = await _backend(RETRIEVAL, lambda s: retrieval_pb2_grpc.
                               add_RetrievalServiceServicer_to_server(retriever, s))
    generate = await _backend(GENERATE, lambda s: generate_pb2_grpc.
                              add_GenerateServiceServicer_to_server(generator, s))
    settings = GatewaySettings(
        port=0, metrics_port=-1,
        retrieval_address=f"127.0.0.1:{retrieval.port}",
        generate_address=f"127.0.0.1:{generate.port}",
        recommend_address=f"127.0.0.1:{free_port()}",  # nothing listens there
        **overrides)
    access = Access(settings)
    app = await build_gateway(settings, access)
    gateway = await serve_in_process(app, interceptors=access.interceptors(),
                                     settings=settings)
    edge = None
    if path == "envoy":
        edge = Edge(run_dir, gateway_address=f"127.0.0.1:{gateway.port}",
                    retrieval_address=settings.retrieval_address,
                    generate_address=settings.generate_address,
                    recommend_address=settings.recommend_address,
                    authz=access.active)
        # The gateway serves on this event loop: wait from a thread.
        await asyncio.to_thread(edge.wait_ready, RETRIEVAL)
    return Mesh(gateway, retrieval, generate, generator, retriever, edge)


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
    for _ in range(100):
        usage = await stub.GetUsage(gateway_pb2.GetUsageRequest(), timeout=5, metadata=metadata)
        rows = {(m.method, m.code): m.calls for m in usage.methods}
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


async def test_api_keys_are_required_when_configured(path: str, tmp_path: pathlib.Path) -> None:
    running = await start(path, tmp_path, api_keys="alice=alice-secret-key-0001")
    stub = retrieval_pb2_grpc.RetrievalServiceStub(running.channel)
    request = retrieval_pb2.GetTrackRequest(track_id="t1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(request, timeout=5, metadata=(("authorization", "Bearer wrong"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    auth = (("authorization", "Bearer alice-secret-key-0001"),)
    reply = await stub.GetTrack(request, timeout=5, metadata=auth)
    assert json.loads(reply.track.metadata.title)["auth"] is None  # the key stays at the edge
    # Probes need no key.
    await health_pb2_grpc.HealthStub(running.channel).Check(health_pb2.HealthCheckRequest())
    usage = await gateway_pb2_grpc.GatewayServiceStub(running.channel).GetUsage(
        gateway_pb2.GetUsageRequest(), timeout=5, metadata=auth)
    assert usage.principal == "alice"
    assert await usage_rows(running.channel, auth) == {(f"/{RETRIEVAL}/GetTrack", "OK"): 1}
    await running.close()


async def test_quota_exhaustion_is_resource_exhausted_with_quota_failure(
        path: str, tmp_path: pathlib.Path) -> None:
    running = await start(path, tmp_path, quota_calls_per_s=0.5, quota_burst=2)
    stub = retrieval_pb2_grpc.RetrievalServiceStub(running.channel)
    request = retrieval_pb2.GetTrackRequest(track_id="t1")
    await stub.GetTrack(request, timeout=5)
    await stub.GetTrack(request, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota exceeded for key 'anonymous'" in caught.value.details()
    status = status_pb2.Status.FromString(
        dict(caught.value.trailing_metadata())["grpc-status-details-bin"])
    failure = error_details_pb2.QuotaFailure()
    assert status.details[0].Unpack(failure)
    assert failure.violations[0].subject == "api_key:anonymous"
    await running.close()


def test_bad_api_key_config_fails_fast() -> None:
    with pytest.raises(ValueError, match="16\\+ characters"):
        AccessInterceptor(Access(GatewaySettings(api_keys="bob=short")))
