"""The mesh as `make up` runs it: four processes, every call through the gateway."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.recommend.v1 import recommend_pb2, recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.support.cli import cli
from tools.devmesh import Mesh

PUBLIC = {"cadenza.retrieval.v1.RetrievalService", "cadenza.recommend.v1.RecommendService",
          "cadenza.generate.v1.GenerateService", "cadenza.gateway.v1.GatewayService"}


@pytest.fixture
def channel(mesh: Mesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mesh.endpoints.public) as ch:
        yield ch



def handled(mesh: Mesh, process: str, method: str, code: str) -> float:
    url = f"http://127.0.0.1:{mesh.endpoints.metrics_ports[process]}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "grpc_server_handled":
            for sample in family.samples:
                if (sample.name == "grpc_server_handled_total"
                        and sample.labels["grpc_method"] == method
                        and sample.labels["grpc_code"] == code):
                    return sample.value
    return 0.0


def test_cadenza_health_reports_every_backend_serving(mesh: Mesh) -> None:
    result = cli(mesh, "health", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["gateway"]["status"] == "SERVING"
    assert {b["name"]: b["status"] for b in report["backends"]} == {
        "retrieval": "SERVING", "recommend": "SERVING", "generate": "SERVING"}
    human = cli(mesh, "health")
    assert human.returncode == 0 and "retrieval" in human.stdout


def test_gateway_reflection_lists_the_public_services(channel: grpc.Channel) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert services >= PUBLIC
    # The descriptors are there too, so grpcurl-style tools can build requests.
    db = ProtoReflectionDescriptorDatabase(channel)
    assert db.FindFileContainingSymbol("cadenza.retrieval.v1.RetrievalService").name == \
        "cadenza/retrieval/v1/retrieval.proto"


def test_malformed_requests_get_invalid_argument_naming_the_field(
        channel: grpc.Channel) -> None:
    retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        retrieval.GetTrack(retrieval_pb2.GetTrackRequest(track_id="no spaces please"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("track_id: ")

    recommend = recommend_pb2_grpc.RecommendServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        recommend.Recommend(recommend_pb2.RecommendRequest(user_id="u1", limit=500), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("limit: must be between 1 and 100, got 500")

    generate = generate_pb2_grpc.GenerateServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        list(generate.Generate(generate_pb2.GenerateRequest(
            sampling=generate_pb2.Sampling(top_p=1.5)), timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("sampling.top_p: ")


def test_generate_is_ready_with_its_default_model_loaded(channel: grpc.Channel) -> None:
    # The mesh reports SERVING only after warm-up, so the model must already be loaded.
    generate = generate_pb2_grpc.GenerateServiceStub(channel)
    listed = generate.ListModels(generate_pb2.ListModelsRequest(), timeout=5)
    default = [m for m in listed.models if m.card.name == listed.default_model]
    assert [m.status for m in default] == ["ready"]


def sample(mesh: Mesh, port: int, name: str, labels: dict[str, str], path: str) -> float:
    """One sample's value from the metrics served on a port (0 when absent)."""
    url = f"http://127.0.0.1:{port}{path}"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return float(s.value)
    return 0.0


def edge_requests(mesh: Mesh, cluster: str) -> float:
    """Requests Envoy sent to a backend cluster (its own stats, as Prometheus scrapes them)."""
    return sample(mesh, mesh.endpoints.edge_admin_port, "envoy_cluster_upstream_rq_completed_total",
                  {"envoy_cluster_name": cluster}, "/stats/prometheus")


def metered(mesh: Mesh, backend: str) -> float:
    """Calls the gateway metered from the edge's access log."""
    return sample(mesh, mesh.endpoints.metrics_ports["gateway"], "cadenza_gateway_calls_total",
                  {"backend": backend, "grpc_code": "OK"}, "/metrics")


def test_metrics_count_calls_by_method_and_code_on_every_hop(
        mesh: Mesh, channel: grpc.Channel) -> None:
    retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    recommend = recommend_pb2_grpc.RecommendServiceStub(channel)
    before = {
        "edge": edge_requests(mesh, "retrieval"),
        "metered": metered(mesh, "retrieval"),
        "retrieval": handled(mesh, "retrieval", "ListFeatureGroups", "OK"),
        "recommend": handled(mesh, "recommend", "SimilarUsers", "INVALID_ARGUMENT"),
        "generate": handled(mesh, "generate", "ListModels", "OK"),
    }
    for _ in range(3):
        retrieval.ListFeatureGroups(retrieval_pb2.ListFeatureGroupsRequest(), timeout=5)
    with pytest.raises(grpc.RpcError):
        recommend.SimilarUsers(recommend_pb2.SimilarUsersRequest(user_id=""), timeout=5)
    generate_pb2_grpc.GenerateServiceStub(channel).ListModels(
        generate_pb2.ListModelsRequest(), timeout=5)

    assert edge_requests(mesh, "retrieval") == before["edge"] + 3
    deadline = time.monotonic() + 10  # the access log arrives in batches
    while metered(mesh, "retrieval") < before["metered"] + 3:
        assert time.monotonic() < deadline, "the edge's calls were not metered"
        time.sleep(0.1)
    assert metered(mesh, "retrieval") == before["metered"] + 3
    assert handled(mesh, "retrieval", "ListFeatureGroups", "OK") == before["retrieval"] + 3
    assert handled(mesh, "recommend", "SimilarUsers", "INVALID_ARGUMENT") == \
        before["recommend"] + 1
    assert handled(mesh, "generate", "ListModels", "OK") == before["generate"] + 1


def test_stopped_backend_is_unavailable_by_name_and_gateway_keeps_serving(
        mesh: Mesh, channel: grpc.Channel) -> None:
    generate = mesh.procs["generate"]
    generate.send_signal(signal.SIGTERM)
    assert generate.wait(timeout=30) == 0
    try:
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListModels(generate_pb2.ListModelsRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "generate backend" in caught.value.details()

        retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        groups = retrieval.ListFeatureGroups(retrieval_pb2.ListFeatureGroupsRequest(), timeout=5)
        assert [g.name for g in groups.groups][:1] == ["timbre"]

        result = cli(mesh, "health", "--json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert {b["name"]: b["status"] for b in report["backends"]}["generate"] == "UNREACHABLE"
    finally:
        mesh.start_process("generate")
        mesh.wait_ready(60)
    deadline = time.monotonic() + 30
    while cli(mesh, "health").returncode != 0:
        assert time.monotonic() < deadline, "generate did not come back"
        time.sleep(0.5)
