"""Outbound channels retry idempotent methods on UNAVAILABLE, and nothing else, and spread
calls over every address their target resolves to."""

from __future__ import annotations

import asyncio
import json

import grpc
import grpc.aio
import pytest

from cadenza.kit.channels import open_channel, service_config
from cadenza.kit.errors import Unavailable
from cadenza.kit.server import App, Binding, RunningServer, ServerSettings, serve_in_process
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2

RECOMMEND = pb.DESCRIPTOR.services_by_name["RecommendService"]


def test_retry_policy_covers_only_idempotent_unary_methods() -> None:
    service = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]
    config = json.loads(service_config([service]))
    names = {n["method"] for n in config["methodConfig"][0]["name"]}
    assert {"GetTrack", "SearchTracks", "DeleteTrack", "ListFeatureGroups"} <= names
    assert "IngestTrack" not in names  # client streaming, not replayable
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]


class _FlakyRecommend(recommend_pb2_grpc.RecommendServiceServicer):
    """Fails each method's first call with UNAVAILABLE, then succeeds."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _attempt(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] == 1:
            raise Unavailable("warming up")

    async def GetModelStatus(self, request: pb.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetModelStatusResponse:
        self._attempt("GetModelStatus")
        return pb.GetModelStatusResponse(model_version="v1")

    async def TrainModel(self, request: pb.TrainModelRequest,
                         context: grpc.aio.ServicerContext) -> pb.TrainModelResponse:
        self._attempt("TrainModel")
        return pb.TrainModelResponse()


async def test_idempotent_call_is_retried_and_non_idempotent_is_not() -> None:
    servicer = _FlakyRecommend()
    server = await serve_in_process(App(bindings=[Binding(
        RECOMMEND.full_name,
        lambda s: recommend_pb2_grpc.add_RecommendServiceServicer_to_server(servicer, s))]))
    channel = open_channel(f"127.0.0.1:{server.port}", [RECOMMEND])
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)

    reply = await stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=5)
    assert reply.model_version == "v1"
    assert servicer.calls["GetModelStatus"] == 2

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.TrainModel(pb.TrainModelRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["TrainModel"] == 1
    await channel.close()
    await server.server.stop(None)


class _CountingRecommend(recommend_pb2_grpc.RecommendServiceServicer):
    """Counts the GetModelStatus calls it serves."""

    def __init__(self) -> None:
        self.calls = 0

    async def GetModelStatus(self, request: pb.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetModelStatusResponse:
        self.calls += 1
        return pb.GetModelStatusResponse(model_version="v1")


async def _counting_server(servicer: _CountingRecommend) -> RunningServer:
    return await serve_in_process(App(bindings=[Binding(
        RECOMMEND.full_name,
        lambda s: recommend_pb2_grpc.add_RecommendServiceServicer_to_server(servicer, s))]))


def test_service_config_asks_for_round_robin() -> None:
    config = json.loads(service_config([RECOMMEND]))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]


async def test_channel_spreads_calls_over_every_resolved_address() -> None:
    """Two real servers behind one target (what a headless Service's DNS name gives):
    the mesh channel alternates between them; a default channel pins one of them."""
    servicers = [_CountingRecommend(), _CountingRecommend()]
    servers = [await _counting_server(s) for s in servicers]
    target = "ipv4:" + ",".join(f"127.0.0.1:{s.port}" for s in servers)
    request = pb.GetModelStatusRequest()

    channel = open_channel(target, [RECOMMEND])
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    # round_robin connects to both addresses in the background; call until both have
    # answered once (a bound, not a timing), then count a clean round of 20 calls.
    for _ in range(1000):
        if all(s.calls for s in servicers):
            break
        await stub.GetModelStatus(request, timeout=5)
    assert all(s.calls for s in servicers), [s.calls for s in servicers]
    before = [s.calls for s in servicers]
    for _ in range(20):
        await stub.GetModelStatus(request, timeout=5)
    assert [s.calls - b for s, b in zip(servicers, before, strict=True)] == [10, 10]
    await channel.close()

    # The control: without the service config (pick_first) every call lands on one server.
    before = [s.calls for s in servicers]
    plain = grpc.aio.insecure_channel(target)
    plain_stub = recommend_pb2_grpc.RecommendServiceStub(plain)
    for _ in range(20):
        await plain_stub.GetModelStatus(request, timeout=5)
    assert sorted(s.calls - b for s, b in zip(servicers, before, strict=True)) == [0, 20]
    await plain.close()
    for server in servers:
        await server.server.stop(None)


async def test_a_new_channel_does_not_inherit_another_channels_backoff() -> None:
    """A server that takes a port another channel found closed answers a new channel at
    once. gRPC shares subchannels process-wide by default, so without a channel-local
    pool the new channel joined the old one's reconnect backoff and failed with
    UNAVAILABLE 'Connection refused' (the gateway tests' CI flake, where the kernel gave
    a new backend a port an earlier test's backend had left)."""
    first = await _counting_server(_CountingRecommend())
    port = first.port
    old = open_channel(f"127.0.0.1:{port}", [RECOMMEND])
    old_stub = recommend_pb2_grpc.RecommendServiceStub(old)
    await old_stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=5)
    await first.server.stop(None)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await old_stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # round_robin keeps reconnecting in the background, its backoff growing to the
    # 2 s cap; by now a reconnect attempt is seconds away.
    await asyncio.sleep(3)

    servicer = _CountingRecommend()
    second = await serve_in_process(
        App(bindings=[Binding(RECOMMEND.full_name, lambda s: recommend_pb2_grpc
                              .add_RecommendServiceServicer_to_server(servicer, s))]),
        settings=ServerSettings(port=port, metrics_port=-1, grace_s=1.0))
    new = open_channel(f"127.0.0.1:{port}", [RECOMMEND])
    reply = await recommend_pb2_grpc.RecommendServiceStub(new).GetModelStatus(
        pb.GetModelStatusRequest(), timeout=5)
    assert reply.model_version == "v1" and servicer.calls == 1
    await new.close()
    await old.close()
    await second.server.stop(None)
