"""What an outside probe sent through the gateway (issue 13), each with the status it must
get now: a clear code naming the field, within a short deadline, counted on every hop."""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
import soundfile
from google.protobuf.message import Message

from cadenza.generate.v1 import generate_pb2 as gen
from cadenza.recommend.v1 import recommend_pb2 as rec
from cadenza.retrieval.v1 import retrieval_pb2 as ret
from tools.devmesh import Mesh
from tools.fuzz.prom import scrape

IA, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
RT, RC = "/cadenza.retrieval.v1.RetrievalService", "/cadenza.recommend.v1.RecommendService"
GN, GW = "/cadenza.generate.v1.GenerateService", "/cadenza.gateway.v1.GatewayService"


@dataclass(frozen=True)
class Bad:
    name: str
    method: str
    body: bytes | Message | list[bytes | Message]   # a list: a client stream
    code: grpc.StatusCode
    fragment: str                                   # the start of the details

    def bodies(self) -> list[bytes]:
        items = self.body if isinstance(self.body, list) else [self.body]
        return [b if isinstance(b, bytes) else b.SerializeToString() for b in items]


def _header(track_id: str, **fields: object) -> ret.IngestTrackRequest:
    return ret.IngestTrackRequest(header=ret.IngestHeader(metadata=ret.TrackMetadata(
        track_id=track_id, title="Probe", **fields)))


def _gen(**fields: object) -> gen.GenerateRequest:
    return gen.GenerateRequest(**fields)  # type: ignore[arg-type]


NOT_DECODING = "is not a valid"
CASES = [
    # 1-2: bodies that do not decode, every call shape and the gateway's own methods.
    Bad("ingest junk", f"{RT}/IngestTrack", [bytes.fromhex("263b312afeff11e4")], IA,
        "message 0 of the request stream is not a valid cadenza.retrieval.v1.IngestTrackRequest"),
    Bad("ingest junk after a header", f"{RT}/IngestTrack",
        [_header("probe-junk"), bytes.fromhex("263b312afeff11e4")], IA, "message 1 of"),
    Bad("events junk", f"{RC}/RecordEvents", [bytes.fromhex("2e14577c70acf6")], IA,
        "message 0 of the request stream is not a valid"),
    Bad("get junk", f"{RT}/GetTrack", bytes.fromhex("0a02fffe"), IA,
        "the request body is not a valid cadenza.retrieval.v1.GetTrackRequest"),
    Bad("generate junk", f"{GN}/Generate", bytes.fromhex("ffffffff"), IA, "the request body"),
    Bad("check mesh junk", f"{GW}/CheckMesh", bytes.fromhex("0a"), IA,
        "the request body is not a valid cadenza.gateway.v1.CheckMeshRequest"),
    Bad("get usage junk", f"{GW}/GetUsage", bytes.fromhex("0a05"), IA, "the request body"),
    # 3: generation length, however it is asked for.
    Bad("99/1", f"{GN}/Generate", _gen(bars=2, time_signature="99/1"), IA,
        "time_signature: a bar of 99/1 is 396 quarter notes"),
    Bad("one bar of 99/1", f"{GN}/Generate", _gen(bars=1, time_signature="99/1"), IA,
        "time_signature"),
    Bad("128 bars of 9999/1", f"{GN}/Generate", _gen(bars=128, time_signature="9999/1"), IA,
        "time_signature"),
    Bad("ten minutes fast", f"{GN}/Generate", _gen(seconds=600, tempo_bpm=300), IA,
        "seconds: this asks for 3000 quarter notes"),
    # 5: made-up cursors.
    Bad("list c:garbage", f"{RT}/ListTracks", ret.ListTracksRequest(page_token="c:garbage"),
        IA, "page_token: is not a token from a previous response"),
    Bad("metadata search c:garbage", f"{RT}/SearchTracks",
        ret.SearchTracksRequest(page_token="c:garbage"), IA, "page_token"),
    Bad("non-ASCII digits", f"{RT}/SearchTracks",
        ret.SearchTracksRequest(text="x", page_token="o:\u0661\u0662"), IA, "page_token"),
    # 6: unknown enum numbers and the arguably invalid.
    Bad("mode 99", f"{GN}/Generate", _gen(mode=99), IA, "mode: unknown value 99"),
    Bad("audio format 9", f"{GN}/Generate", _gen(audio_format=9), IA,
        "audio_format: unknown value 9"),
    Bad("space 7", f"{RT}/SearchTracks", ret.SearchTracksRequest(
        examples=ret.TrackExamples(positive_track_ids=["a"], space=7)), IA,
        "examples.space: unknown value 7"),
    Bad("event kind 99", f"{RC}/RecordEvent", rec.RecordEventRequest(event=rec.Event(
        event_id="e", user_id="u", track_id="t", kind=99)), IA, "event.kind: unknown value"),
    Bad("year -2^31", f"{RT}/IngestTrack", [_header("probe-year", year=-2**31)], IA,
        "header.metadata.year: must be 1-9999"),
    Bad("200 programs", f"{GN}/Generate", _gen(programs=[0] * 200), IA,
        "programs: at most 16"),
    Bad("infinite temperature", f"{GN}/Generate",
        _gen(sampling=gen.Sampling(temperature=math.inf)), IA, "sampling.temperature"),
    Bad("positive and negative", f"{RT}/SearchTracks", ret.SearchTracksRequest(
        examples=ret.TrackExamples(positive_track_ids=["a"], negative_track_ids=["a"])), IA,
        "examples.negative_track_ids[0]: track 'a' is also a positive example"),
    # And a few the probe did not name, on the other methods.
    Bad("batch of 1001", f"{RT}/BatchGetTracks",
        ret.BatchGetTracksRequest(track_ids=[f"t{i}" for i in range(1001)]), IA, "track_ids"),
    Bad("delete bad id", f"{RT}/DeleteTrack", ret.DeleteTrackRequest(track_id="a b"), IA,
        "track_id"),
    Bad("delete unknown", f"{RT}/DeleteTrack", ret.DeleteTrackRequest(track_id="probe-none"),
        NF, ""),
    Bad("NaN weight", f"{RC}/Recommend", rec.RecommendRequest(
        user_id="u1", weights={"content": math.nan}), IA, "weights[content]"),
    Bad("target key 12", f"{RC}/Recommend", rec.RecommendRequest(
        user_id="u1", targets=rec.AudioTargets(target_key=12)), IA, "targets.target_key"),
    Bad("huge tempo target", f"{RC}/Recommend", rec.RecommendRequest(
        user_id="u1", targets=rec.AudioTargets(target_tempo_bpm=1e308)), IA,
        "targets.target_tempo_bpm: must be 1 to 1000"),
    Bad("similar users limit", f"{RC}/SimilarUsers",
        rec.SimilarUsersRequest(user_id="u1", limit=0), IA, "limit"),
    Bad("train unknown", f"{RC}/TrainModel", rec.TrainModelRequest(algorithm="nope"), IA,
        "algorithm"),
    Bad("listened a year", f"{RC}/RecordEvent", rec.RecordEventRequest(event=rec.Event(
        event_id="e", user_id="u", track_id="t", kind=rec.EVENT_KIND_PLAY,
        listened_ms=2**62)), IA, "event.listened_ms"),
]
_SHAPES = {"IngestTrack": "stream_unary", "RecordEvents": "stream_unary",
           "Generate": "unary_stream"}


def _call(channel: grpc.Channel, case: Bad) -> grpc.RpcError | None:
    shape = _SHAPES.get(case.method.rsplit("/", 1)[1], "unary_unary")
    bodies = case.bodies()
    try:
        if shape == "stream_unary":
            channel.stream_unary(case.method)(iter(bodies), timeout=10)
        elif shape == "unary_stream":
            for _ in channel.unary_stream(case.method)(bodies[0], timeout=10):
                pass
        else:
            channel.unary_unary(case.method)(bodies[0], timeout=10)
    except grpc.RpcError as error:
        return error
    return None


def _handled(mesh: Mesh) -> Counter[tuple[str, str]]:
    """grpc_server_handled_total per (method, code), summed over the servers behind the
    edge: each call crossed Envoy and was counted where it was served."""
    counts: Counter[tuple[str, str]] = Counter()
    for process in ("retrieval", "recommend", "generate", "gateway"):
        for (_, method, code), n in scrape(mesh.endpoints.metrics_ports[process]).items():
            counts[method, code] += n
    return counts


@pytest.fixture(scope="module")
def channel(mesh: Mesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mesh.endpoints.public) as ch:
        yield ch


def test_every_bad_request_gets_its_status_and_is_counted(mesh: Mesh,
                                                          channel: grpc.Channel) -> None:
    before = _handled(mesh)
    wrong = []
    for case in CASES:
        error = _call(channel, case)
        got = (error.code(), error.details() or "") if error else (grpc.StatusCode.OK, "")
        if got[0] != case.code or not got[1].startswith(case.fragment):
            wrong.append(f"{case.name}: {got[0].name} {got[1]!r}")
    assert wrong == [], "\n".join(wrong)
    after = _handled(mesh)
    for case in CASES:
        key = (case.method.rsplit("/", 1)[1], case.code.name)
        expected = sum(1 for c in CASES if (c.method.rsplit("/", 1)[1], c.code.name) == key)
        assert after[key] - before[key] == expected, key


def _wav(freq: float) -> bytes:
    t = np.arange(6 * 22050) / 22050
    signal = 0.4 * np.sin(2 * np.pi * freq * t) + 0.3 * ((t % 0.5) < 0.02)
    buffer = io.BytesIO()
    soundfile.write(buffer, signal.astype(np.float32), 22050, format="WAV")
    return buffer.getvalue()


def test_weights_of_1e308_rank_instead_of_zeroing_every_score(channel: grpc.Channel) -> None:
    ingest = channel.stream_unary(f"{RT}/IngestTrack")
    for track_id, freq in (("probe-huge-a", 220.0), ("probe-huge-b", 233.0)):
        ingest(iter([_header(track_id).SerializeToString(),
                     ret.IngestTrackRequest(audio_chunk=_wav(freq)).SerializeToString()]),
               timeout=60)
    try:
        search = channel.unary_unary(f"{RT}/SearchTracks",
                                     request_serializer=ret.SearchTracksRequest.SerializeToString,
                                     response_deserializer=ret.SearchTracksResponse.FromString)
        reply = search(ret.SearchTracksRequest(like_track_id="probe-huge-a", weights={
            "timbre": 1e308, "harmony": 1e308}), timeout=10)
        assert reply.weights["timbre"] == pytest.approx(0.5)
        assert reply.hits and all(h.score != 0 for h in reply.hits)
    finally:
        delete = channel.unary_unary(f"{RT}/DeleteTrack")
        for track_id in ("probe-huge-a", "probe-huge-b"):
            delete(ret.DeleteTrackRequest(track_id=track_id).SerializeToString(), timeout=10)
