"""The edge as `make up` runs it: REST/JSON, gRPC-Web and a supervised Envoy, on the real mesh.

The session mesh's edge is plaintext (TLS is tested in tests/gateway/test_tls.py); the
calls here are plain HTTP/1.1, as curl or a browser would make them.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import struct
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile

from cadenza.generate.v1 import generate_pb2
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tools.devmesh import Mesh, alive, wait_edge_healthy, wait_serving


def rest(mesh: Mesh, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 call to the edge: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", mesh.endpoints.edge_port, timeout=60)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload,
                     headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def rest_json(mesh: Mesh, method: str, path: str, body: object = None) -> tuple[int, Any]:
    status, _, raw = rest(mesh, method, path, body)
    return status, json.loads(raw)


def test_rest_lists_the_models(mesh: Mesh) -> None:
    # The platform's catalogue: every service's models, each with its unit.
    status, reply = rest_json(mesh, "GET", "/v1/models")
    assert status == 200
    units = {m["name"]: m["unit"] for m in reply["models"]}
    assert units["cadenza-poly"] == "seconds" and units["cadenza-motif"] == "images"
    assert units["cadenza-recommender"] == "recommendations"
    assert {m["modality"] for m in reply["models"]} >= {"music", "audio", "image",
                                                        "embedding", "recommender"}
    # The generate service's own list is still there, under its service's path.
    status, reply = rest_json(mesh, "GET", "/v1/generate/models")
    assert status == 200
    names = {m["card"]["name"] for m in reply["models"]}
    assert {"cadenza-poly", "cadenza-ddsp", "cadenza-motif"} <= names


def _wav(seconds: float = 4.0, freq: float = 330.0) -> bytes:
    t = np.arange(int(seconds * 22050)) / 22050
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 22050,
                    format="WAV")
    return buffer.getvalue()


def test_rest_ingest_search_get_and_delete_a_track(mesh: Mesh) -> None:
    # IngestTrack streams its request: over REST the body is a JSON array of its messages.
    parts = [{"header": {"metadata": {"track_id": "rest-jig", "title": "A jig at the edge",
                                      "artist": "The REST Band", "genre": "folk"}}},
             {"audio_chunk": base64.b64encode(_wav()).decode()}]
    status, reply = rest_json(mesh, "POST", "/v1/tracks:ingest", parts)
    assert status == 200, reply
    assert reply["track"]["metadata"]["track_id"] == "rest-jig"
    try:
        status, reply = rest_json(mesh, "POST", "/v1/tracks:search", {"text": "jig", "limit": 3})
        assert status == 200, reply
        assert reply["hits"][0]["track"]["metadata"]["track_id"] == "rest-jig"
        status, track = rest_json(mesh, "GET", "/v1/tracks/rest-jig")
        assert status == 200 and track["track"]["metadata"]["artist"] == "The REST Band"
    finally:
        status, _ = rest_json(mesh, "DELETE", "/v1/tracks/rest-jig")
        assert status == 200
    status, _ = rest_json(mesh, "GET", "/v1/tracks/rest-jig")
    assert status == 404


def test_rest_errors_are_json_with_the_grpc_code_and_message(mesh: Mesh) -> None:
    status, error = rest_json(mesh, "GET", "/v1/tracks/no-such-track")
    assert status == 404
    assert error["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no-such-track" in error["message"]
    status, error = rest_json(mesh, "POST", "/v1/users/u1:recommend", {"limit": 500})
    assert status == 400
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert error["message"].startswith("limit")


def test_rest_recommend_answers_a_new_user_from_cold_start(mesh: Mesh) -> None:
    status, reply = rest_json(mesh, "POST", "/v1/users/rest-new-user:recommend", {"limit": 5})
    assert status == 200, reply
    assert "weights" in reply and len(reply.get("items", [])) <= 5


def test_rest_generate_streams_a_json_array(mesh: Mesh) -> None:
    status, headers, raw = rest(mesh, "POST", "/v1/music:generate",
                                {"bars": 2, "seed": 3})
    assert status == 200, raw[:500]
    assert headers["content-type"].startswith("application/json")
    items = json.loads(raw)  # one array, streamed element by element
    assert isinstance(items, list) and len(items) >= 2
    assert all("event" in item for item in items[:-1])
    assert "result" in items[-1] and "midi" in items[-1]["result"]


def grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_web_frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(flags, payload) of each frame in a gRPC-Web response body."""
    at = 0
    while at < len(body):
        flags, size = body[at], struct.unpack(">I", body[at + 1:at + 5])[0]
        yield flags, body[at + 5:at + 5 + size]
        at += 5 + size


def test_grpc_web_call_from_a_browser_origin(mesh: Mesh) -> None:
    origin = {"origin": "http://localhost:3000"}
    status, headers, _ = rest(mesh, "OPTIONS", "/cadenza.generate.v1.GenerateService/ListModels",
                              headers={**origin, "access-control-request-method": "POST",
                                       "access-control-request-headers": "content-type,x-grpc-web"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://localhost:3000"

    conn = http.client.HTTPConnection("127.0.0.1", mesh.endpoints.edge_port, timeout=30)
    request = generate_pb2.ListModelsRequest().SerializeToString()
    conn.request("POST", "/cadenza.generate.v1.GenerateService/ListModels",
                 body=grpc_web_frame(request),
                 headers={**origin, "content-type": "application/grpc-web+proto",
                          "x-grpc-web": "1"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200
    assert response.getheader("content-type", "").startswith("application/grpc-web")
    frames = list(grpc_web_frames(body))
    data = [payload for flags, payload in frames if flags == 0]
    trailers = b"".join(payload for flags, payload in frames if flags & 0x80).decode()
    assert "grpc-status:0" in trailers.replace(" ", "")
    reply = generate_pb2.ListModelsResponse.FromString(data[0])
    assert any(m.card.name == "cadenza-poly" for m in reply.models)


def test_envoy_killed_is_restarted_by_its_supervisor_and_no_state_is_lost(mesh: Mesh) -> None:
    pid_file = mesh.data_dir / "edge" / "envoy.pid"
    backend_pids = {name: proc.pid for name, proc in mesh.procs.items() if name != "edge"}
    with grpc.insecure_channel(mesh.endpoints.public) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        before = stub.GetCatalogStats(retrieval_pb2.GetCatalogStatsRequest(), timeout=10)
    old = int(pid_file.read_text())
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or int(pid_file.read_text()) == old or alive(old):
        assert time.monotonic() < deadline, "the supervisor did not restart Envoy"
        time.sleep(0.1)
    wait_serving(mesh.endpoints.public, 30)
    wait_edge_healthy(mesh.endpoints.edge_admin_port, 30)
    with grpc.insecure_channel(mesh.endpoints.public) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        after = stub.GetCatalogStats(retrieval_pb2.GetCatalogStatsRequest(), timeout=10)
    assert after.track_count == before.track_count
    assert {name: proc.pid for name, proc in mesh.procs.items() if name != "edge"} == \
        backend_pids
    assert all(proc.poll() is None for proc in mesh.procs.values())


@pytest.fixture(autouse=True)
def _edge_is_up(mesh: Mesh) -> None:
    wait_serving(mesh.endpoints.public, 30)
