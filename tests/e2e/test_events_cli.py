"""Recording events through the gateway with `cadenza event` and a streamed batch."""

from __future__ import annotations

import json

import grpc

from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from tests.support.cli import cli
from tools.devmesh import Mesh


def test_events_reach_recommend_through_the_gateway(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.endpoints.public) as channel:
        retrieval_pb2_grpc.RetrievalServiceStub(channel).IngestTrack(iter([
            rpb.IngestTrackRequest(header=rpb.IngestHeader(metadata=rpb.TrackMetadata(
                track_id="e2e-event-track", title="Heard")))]), timeout=30)
        first = cli(mesh, "event", "e2e-user", "e2e-event-track", "play", "--event-id",
                    "e2e-ev-1", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == {"event_id": "e2e-ev-1", "duplicate": False}
        assert cli(mesh, "event", "e2e-user", "e2e-event-track", "play", "--event-id",
                   "e2e-ev-1").stdout.strip() == "duplicate"

        batch = [pb.RecordEventsRequest(event=pb.Event(
            event_id=f"e2e-batch-{i}", user_id="e2e-user", kind=pb.EVENT_KIND_LIKE,
            track_id="e2e-event-track" if i != 2 else "e2e-missing")) for i in range(5)]
        reply = recommend_pb2_grpc.RecommendServiceStub(channel).RecordEvents(
            iter(batch), timeout=30)
        assert (reply.stored, reply.duplicates) == (4, 0)
        assert [(r.index, r.event_id) for r in reply.rejected] == [(2, "e2e-batch-2")]
