"""Real traffic through the gateway that moves every metric operators watch.

A little of everything: ingests (metadata and audio), every search mode, a delete,
listening events for two groups of listeners, a training run, recommendations, a short
generation (also as a long-running operation), and one bad request per backend so that
error codes appear.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
import soundfile
from google.longrunning import operations_pb2, operations_pb2_grpc

from cadenza.gateway.v1 import gateway_pb2 as gwpb
from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.generate.v1 import generate_pb2 as gpb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.recommend.v1 import recommend_pb2 as rpb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.audio_decoding import SAMPLE_RATE_HZ
from services.retrieval.feature_speed import benchmark_clip

TRACKS = 10  # metadata-only tracks the listeners play
LISTENERS = 8  # two taste groups: each plays their group's 5 tracks and 1 of the other's
TIMEOUT_S = 120


@dataclass(frozen=True)
class Traffic:
    prefix: str
    audio_track: str
    deleted_track: str
    training_run_id: str
    training_started_at_unix_s: float
    listeners: int


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, benchmark_clip(seconds), SAMPLE_RATE_HZ, format="WAV")
    return buffer.getvalue()


def _ingest(stub: retrieval_pb2_grpc.RetrievalServiceStub, track_id: str, title: str,
            audio: bytes | None = None) -> None:
    meta = tpb.TrackMetadata(track_id=track_id, title=title, artist="Ops Ensemble",
                             tags=["ops"])

    def parts() -> Iterator[tpb.IngestTrackRequest]:
        yield tpb.IngestTrackRequest(header=tpb.IngestHeader(metadata=meta))
        if audio is not None:
            yield tpb.IngestTrackRequest(audio_chunk=audio)

    stub.IngestTrack(parts(), timeout=TIMEOUT_S)


def _expect_error(code: grpc.StatusCode, call: object, *args: object, **kwargs: object) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)  # type: ignore[operator]
        if not hasattr(result, "track") and hasattr(result, "__iter__"):
            list(result)  # a server stream fails while it is read
    assert caught.value.code() == code, caught.value.details()


def retrieval_traffic(channel: grpc.Channel, prefix: str) -> tuple[str, str]:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    for i in range(TRACKS):
        _ingest(stub, f"{prefix}-{i}", f"Ops chorale {i}")
    audio_track, deleted = f"{prefix}-audio", f"{prefix}-gone"
    _ingest(stub, audio_track, "Ops audio", _wav(6.0))
    _ingest(stub, deleted, "Ops deleted")
    stub.DeleteTrack(tpb.DeleteTrackRequest(track_id=deleted), timeout=TIMEOUT_S)
    searches = [
        tpb.SearchTracksRequest(text="ops chorale"),
        tpb.SearchTracksRequest(like_track_id=audio_track),
        tpb.SearchTracksRequest(like_audio=tpb.AudioClip(data=_wav(6.0))),
        tpb.SearchTracksRequest(examples=tpb.TrackExamples(
            positive_track_ids=[f"{prefix}-0"], space=tpb.EXAMPLE_SPACE_TEXT)),
        tpb.SearchTracksRequest(filter=tpb.TrackFilter(artists=["Ops Ensemble"])),
    ]
    for request in searches:
        stub.SearchTracks(request, timeout=TIMEOUT_S)
    _expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.GetTrack,
                  tpb.GetTrackRequest(track_id="no spaces please"), timeout=TIMEOUT_S)
    _expect_error(grpc.StatusCode.NOT_FOUND, stub.GetTrack,
                  tpb.GetTrackRequest(track_id=f"{prefix}-missing"), timeout=TIMEOUT_S)
    return audio_track, deleted


def recommend_traffic(channel: grpc.Channel, prefix: str) -> tuple[str, float]:
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)

    def events() -> Iterator[rpb.RecordEventsRequest]:
        for u in range(LISTENERS):
            group = u % 2  # even tracks or odd tracks
            plays = [t for t in range(TRACKS) if t % 2 == group] + [2 * (u // 2) + 1 - group]
            for t in plays:
                yield rpb.RecordEventsRequest(event=rpb.Event(
                    event_id=f"{prefix}-e{u}-{t}", user_id=f"{prefix}-user-{u}",
                    track_id=f"{prefix}-{t}", kind=rpb.EVENT_KIND_PLAY, count=1 + t % 3))

    stub.RecordEvents(events(), timeout=TIMEOUT_S)
    run = _train(stub)
    deadline = time.monotonic() + 600
    while True:
        latest = stub.GetModelStatus(rpb.GetModelStatusRequest(), timeout=TIMEOUT_S).latest_run
        if latest.run_id == run.run_id and latest.state != "running":
            break
        assert time.monotonic() < deadline, f"training run {run.run_id} still running"
        time.sleep(0.5)
    assert latest.state == "succeeded", latest.error
    first = stub.Recommend(rpb.RecommendRequest(user_id=f"{prefix}-user-0", limit=5),
                           timeout=TIMEOUT_S)
    again = stub.Recommend(rpb.RecommendRequest(user_id=f"{prefix}-user-0", limit=5),
                           timeout=TIMEOUT_S)  # the same list, from the list cache
    assert [i.track_id for i in again.items] == [i.track_id for i in first.items]
    # A like from a listener who asked lately: their default list is computed again.
    stub.RecordEvent(rpb.RecordEventRequest(event=rpb.Event(
        event_id=f"{prefix}-like", user_id=f"{prefix}-user-0",
        track_id=first.items[0].track_id, kind=rpb.EVENT_KIND_LIKE)), timeout=TIMEOUT_S)
    _expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.Recommend,
                  rpb.RecommendRequest(user_id=f"{prefix}-user-0", limit=500),
                  timeout=TIMEOUT_S)
    return run.run_id, run.started_at_unix_s


def _train(stub: recommend_pb2_grpc.RecommendServiceStub) -> rpb.TrainingRun:
    """Starts a run, waiting out one another test may have started on the shared mesh."""
    deadline = time.monotonic() + 600
    while True:
        try:
            return stub.TrainModel(rpb.TrainModelRequest(), timeout=TIMEOUT_S).run
        except grpc.RpcError as error:
            if (error.code() != grpc.StatusCode.FAILED_PRECONDITION
                    or time.monotonic() > deadline):
                raise
            time.sleep(0.5)


def generate_traffic(channel: grpc.Channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(channel)
    stub.ListModels(gpb.ListModelsRequest(), timeout=TIMEOUT_S)
    replies = list(stub.Generate(gpb.GenerateRequest(bars=2, seed=7), timeout=TIMEOUT_S))
    assert replies, "the generation sent nothing"
    _expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.Generate,
                  gpb.GenerateRequest(sampling=gpb.Sampling(top_p=1.5)), timeout=TIMEOUT_S)
    # The same generation as a long-running operation, followed to its end.
    request = gwpb.StartOperationRequest(method="/cadenza.generate.v1.GenerateService/Generate")
    request.calls.add().messages.add().Pack(gpb.GenerateRequest(bars=2, seed=7))
    started = gateway_pb2_grpc.GatewayServiceStub(channel).StartOperation(request,
                                                                          timeout=TIMEOUT_S)
    wait = operations_pb2.WaitOperationRequest(name=started.name)
    wait.timeout.FromSeconds(60)
    done = operations_pb2_grpc.OperationsStub(channel).WaitOperation(wait, timeout=TIMEOUT_S)
    assert done.done and not done.HasField("error"), done


def drive(gateway_address: str) -> Traffic:
    prefix = f"ops-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(gateway_address) as channel:
        audio_track, deleted = retrieval_traffic(channel, prefix)
        run_id, started_at = recommend_traffic(channel, prefix)
        generate_traffic(channel)
    return Traffic(prefix, audio_track, deleted, run_id, started_at, LISTENERS)
