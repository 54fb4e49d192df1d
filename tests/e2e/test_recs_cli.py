"""`cadenza recommend`, `cadenza train-recs` and `cadenza similar-users` through the gateway."""

from __future__ import annotations

import json

import grpc

from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from tests.support.cli import cli
from tools.devmesh import Mesh

TRACKS = {"cli-rec-folk-1": ("Reel", ("folk", "fiddle")),
          "cli-rec-folk-2": ("Jig", ("folk", "fiddle")),
          "cli-rec-metal-1": ("Riff", ("metal", "distortion"))}


def test_recommend_train_and_similar_users_from_the_command_line(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.endpoints.public) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for track_id, (title, tags) in TRACKS.items():
            stub.IngestTrack(iter([rpb.IngestTrackRequest(header=rpb.IngestHeader(
                metadata=rpb.TrackMetadata(track_id=track_id, title=title,
                                           artist=f"{title} band", tags=tags)))]), timeout=30)
    for user in ("cli-listener-1", "cli-listener-2"):
        done = cli(mesh, "event", user, "cli-rec-folk-1", "like")
        assert done.returncode == 0, done.stderr

    shown = cli(mesh, "recommend", "cli-listener-1", "--limit", "5")
    assert shown.returncode == 0, shown.stderr
    assert "1. Jig" in shown.stdout and "in the style of Reel" in shown.stdout
    listed = json.loads(cli(mesh, "recommend", "cli-listener-1", "--json").stdout)
    ids = [i["track_id"] for i in listed["items"]]
    assert ids[0] == "cli-rec-folk-2" and "cli-rec-folk-1" not in ids  # heard: left out

    cold = cli(mesh, "recommend", "cli-nobody", "--seed-tag", "metal", "--json")
    assert cold.returncode == 0, cold.stderr
    reply = json.loads(cold.stdout)
    assert reply["cold_start"] is True
    assert [i["track_id"] for i in reply["items"]] == ["cli-rec-metal-1"]

    trained = cli(mesh, "train-recs", "--json")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert json.loads(trained.stdout)["state"] == "succeeded"
    similar = cli(mesh, "similar-users", "cli-listener-1", "--json")
    assert similar.returncode == 0, similar.stderr
    assert "cli-listener-2" in {u["user_id"] for u in json.loads(similar.stdout)["users"]}

    bad = cli(mesh, "recommend", "cli-listener-1", "--limit", "0")
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: limit" in bad.stderr
