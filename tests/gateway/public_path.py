"""Test backends that report what reached them, and the public path in front of them:
the production gateway (build_gateway and its access interceptor) with Envoy (the edge,
a real process) or the gateway's own Python forwarder as the public entry."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.kit import context
from cadenza.kit.errors import NotFound
from cadenza.kit.server import App, Binding, RunningServer, serve_in_process
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.access import Access
from gateway.app import build_gateway
from gateway.settings import GatewaySettings
from tests.support.addresses import NOWHERE
from tests.support.edge import Edge

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
                yield generate_pb2.GenerateResponse(event=generate_pb2.NoteEvent(
                    pitch=60 + i % 24, start_beats=4.0 * i, duration_beats=4.0))  # a bar each
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
                 retriever: EchoRetrieval, edge: Edge | None, app: App) -> None:
        self.gateway, self.retrieval, self.generate = gateway, retrieval, generate
        self.app, self._gateway_stopped = app, False
        self.generator, self.retriever = generator, retriever
        self.edge = edge
        public = edge.address if edge else f"127.0.0.1:{gateway.port}"
        self.channel = grpc.aio.insecure_channel(public)

    async def stop_gateway(self) -> None:
        """Stops the gateway as its process does (server, then its app), once."""
        if not self._gateway_stopped:
            self._gateway_stopped = True
            await self.gateway.server.stop(None)
            if self.app.close is not None:
                await self.app.close()

    async def close(self) -> None:
        await self.channel.close()
        if self.edge:
            self.edge.stop()
        if not self._gateway_stopped:
            # The server only, as before: closing the app here leaves a task that
            # ignores cancellation when the test's loop shuts down (forwarded streams).
            await self.gateway.server.stop(None)
        for server in (self.retrieval, self.generate):
            await server.server.stop(None)


async def _backend(name: str, add: object) -> RunningServer:
    return await serve_in_process(App(bindings=[Binding(name, add)]))  # type: ignore[arg-type]


async def start(path: str, run_dir: pathlib.Path, edge_settings: dict[str, object] | None = None,
                keys: bool = False, **overrides: object) -> Mesh:
    """Backends, the gateway and (for path "envoy") the edge, on free ports.

    With keys, calls need an API key from the gateway's store (run_dir/gateway.db) and
    the edge asks the gateway about each call (ext_authz)."""
    generator, retriever = CountingGenerate(), EchoRetrieval()
    retrieval = await _backend(RETRIEVAL, lambda s: retrieval_pb2_grpc.
                               add_RetrievalServiceServicer_to_server(retriever, s))
    generate = await _backend(GENERATE, lambda s: generate_pb2_grpc.
                              add_GenerateServiceServicer_to_server(generator, s))
    settings = GatewaySettings(
        port=0, metrics_port=-1,
        retrieval_address=f"127.0.0.1:{retrieval.port}",
        generate_address=f"127.0.0.1:{generate.port}",
        recommend_address=NOWHERE,
        store_path=str(run_dir / "gateway.db"), require_keys=keys,
        **overrides)
    access = Access()
    app = await build_gateway(settings, access)
    gateway = await serve_in_process(app, interceptors=access.interceptors(),
                                     settings=settings)
    edge = None
    if path == "envoy":
        edge = Edge(run_dir, gateway_address=f"127.0.0.1:{gateway.port}",
                    retrieval_address=settings.retrieval_address,
                    generate_address=settings.generate_address,
                    recommend_address=settings.recommend_address,
                    authz=keys, **(edge_settings or {}))
        # The gateway serves on this event loop: wait from a thread.
        ca = None
        if edge_settings and "tls_cert_file" in edge_settings:
            ca = pathlib.Path(str(edge_settings["tls_cert_file"])).with_name("ca.pem")
        await asyncio.to_thread(edge.wait_ready, RETRIEVAL, 30, ca)
    return Mesh(gateway, retrieval, generate, generator, retriever, edge, app)


