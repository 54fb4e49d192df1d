"""Recommend, SimilarTracks, SimilarUsers and training over gRPC.

The whole recommend service as app.py builds it (SQLite event log, embedded Qdrant model
store, the retrieval client) in front of a real retrieval server. The catalog has two
taste clusters that differ in their text (rock vs jazz tags) and listeners who keep to
one cluster, so the right answers are known.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from cadenza.kit.server import serve_in_process
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.recommend import fitting
from services.recommend.app import build_recommend
from services.recommend.settings import RecommendSettings
from services.retrieval.app import build_retrieval
from services.retrieval.settings import RetrievalSettings

MODEL_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / "text"
pytestmark = [
    pytest.mark.skipif(not (MODEL_DIR / "model_card.json").exists(),
                       reason="run `make text-model` first (make test does)"),
    pytest.mark.asyncio(loop_scope="module"),
]
CLUSTERS = {
    "rock": ("rock", "electric guitar", "loud drums"),
    "jazz": ("jazz", "saxophone", "swing"),
}
PER_CLUSTER = 16


def track(cluster: str, i: int) -> str:
    return f"{cluster}-{i:02d}"


def play(user: str, track_id: str, n: int = 3, kind: int = pb.EVENT_KIND_PLAY) -> pb.Event:
    return pb.Event(event_id=f"{user}-{track_id}-{kind}", user_id=user, track_id=track_id,
                    kind=kind, count=n)


class Recs:
    def __init__(self, stub: recommend_pb2_grpc.RecommendServiceStub) -> None:
        self.stub = stub

    async def record(self, *events: pb.Event) -> None:
        async def stream() -> AsyncIterator[pb.RecordEventsRequest]:
            for event in events:
                yield pb.RecordEventsRequest(event=event)
        reply = await self.stub.RecordEvents(stream(), timeout=30)
        assert not reply.rejected, reply.rejected

    async def recommend(self, user: str, **fields: object) -> pb.RecommendResponse:
        return await self.stub.Recommend(pb.RecommendRequest(user_id=user, **fields),
                                         timeout=30)

    async def train(self, algorithm: str = "") -> pb.TrainingRun:
        run = (await self.stub.TrainModel(pb.TrainModelRequest(algorithm=algorithm),
                                          timeout=10)).run
        assert run.state == "running"
        for _ in range(600):
            status = await self.stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=10)
            if status.latest_run.run_id == run.run_id and status.latest_run.state != "running":
                return status.latest_run
            await asyncio.sleep(0.1)
        raise AssertionError("training did not finish in 60 s")

    async def expect(self, code: grpc.StatusCode, call: object, *fragments: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call  # type: ignore[misc]
        details = str(caught.value.details())
        assert caught.value.code() == code, details
        for fragment in fragments:
            assert fragment in details, details


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Recs]:
    r_settings = RetrievalSettings(port=0, metrics_port=-1, text_model_dir=str(MODEL_DIR),
                                   data_dir=str(tmp_path_factory.mktemp("retrieval")))
    retrieval = await build_retrieval(r_settings)
    assert retrieval.warmup and retrieval.close
    await retrieval.warmup()
    r_running = await serve_in_process(retrieval, settings=r_settings)
    address = f"127.0.0.1:{r_running.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for cluster, tags in CLUSTERS.items():
            for i in range(PER_CLUSTER):
                meta = rpb.TrackMetadata(track_id=track(cluster, i), title=f"{cluster} {i}",
                                         artist=f"{cluster} band {i % 8}", tags=tags)
                await stub.IngestTrack(iter([rpb.IngestTrackRequest(
                    header=rpb.IngestHeader(metadata=meta))]), timeout=30)
    settings = RecommendSettings(port=0, metrics_port=-1, retrieval_address=address,
                                 retrain_interval_s=0,
                                 data_dir=str(tmp_path_factory.mktemp("recommend")))
    app = await build_recommend(settings)
    assert app.warmup and app.close
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        recs = Recs(recommend_pb2_grpc.RecommendServiceStub(channel))
        # Ten listeners per cluster, each playing half of it (a different half each).
        events = []
        for cluster in CLUSTERS:
            for u in range(10):
                for i in range(PER_CLUSTER):
                    if (i + u) % 2 == 0 or i < 3:
                        events.append(play(f"{cluster}-fan-{u}", track(cluster, i), 2 + i % 4))
        await recs.record(*events)
        yield recs
    await running.server.stop(None)
    await app.close()
    await r_running.server.stop(None)
    await retrieval.close()


async def test_before_training_a_known_user_gets_content_recommendations(recs: Recs) -> None:
    reply = await recs.recommend("rock-fan-0", limit=5, max_per_artist=0)
    assert reply.model_version == ""
    assert not reply.cold_start
    assert [i.track_id.split("-")[0] for i in reply.items] == ["rock"] * 5


async def test_training_publishes_a_model_and_status_reports_it(recs: Recs) -> None:
    run = await recs.train()
    assert run.state == "succeeded", run.error
    assert run.users == 20 and run.items == 2 * PER_CLUSTER
    status = await recs.stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=10)
    assert status.model_version == run.model_version
    assert status.events_stored > 0
    assert set(status.default_weights) == {"collaborative", "content", "seeds", "popularity",
                                           "targets"}


async def test_recommendations_exclude_heard_blend_sources_and_give_reasons(
        recs: Recs) -> None:
    await recs.train()
    user = "rock-fan-1"
    reply = await recs.recommend(user, limit=5, max_per_artist=0)
    heard = {track("rock", i) for i in range(PER_CLUSTER) if (i + 1) % 2 == 0 or i < 3}
    ids = [i.track_id for i in reply.items]
    assert ids and not set(ids) & heard
    assert all(t.startswith("rock") for t in ids)
    assert reply.model_version
    for item in reply.items:
        assert item.score == pytest.approx(sum(item.contributions.values()))
        assert item.reason
    assert any(i.reason.startswith("because you like rock") for i in reply.items)
    assert sum(reply.weights.values()) == pytest.approx(1.0)

    with_heard = await recs.recommend(user, limit=30, include_heard=True, max_per_artist=0)
    assert {i.track_id for i in with_heard.items} & heard


async def test_a_new_like_changes_the_next_list_without_retraining(recs: Recs) -> None:
    user = "newcomer-1"
    await recs.record(play(user, track("rock", 0), 5, pb.EVENT_KIND_LIKE))
    before = await recs.recommend(user, limit=5, max_per_artist=0)
    assert all(i.track_id.startswith("rock") for i in before.items)
    await recs.record(play(user, track("jazz", 1), 20, pb.EVENT_KIND_LIKE),
                      play(user, track("jazz", 2), 20, pb.EVENT_KIND_LIKE),
                      play(user, track("rock", 0), 1, pb.EVENT_KIND_DISLIKE))
    after = await recs.recommend(user, limit=5, max_per_artist=0, include_heard=True)
    ids = [i.track_id for i in after.items]
    assert track("rock", 0) not in ids  # disliked: never again, even with include_heard
    assert ids[0].startswith("jazz")


async def test_dislikes_and_the_artist_cap(recs: Recs) -> None:
    user = "capped"
    await recs.record(*(play(user, track("jazz", i), 4) for i in range(4)),
                      play(user, track("jazz", 9), 1, pb.EVENT_KIND_DISLIKE))
    reply = await recs.recommend(user, limit=10, max_per_artist=1)
    artists = [i.artist for i in reply.items]
    assert len(artists) == len(set(artists))
    assert track("jazz", 9) not in {i.track_id for i in reply.items}


async def test_unknown_user_is_a_cold_start_from_seeds(recs: Recs) -> None:
    reply = await recs.recommend("never-seen", limit=5, seeds=pb.Seeds(text="saxophone swing"))
    assert reply.cold_start
    assert reply.items and all(i.track_id.startswith("jazz") for i in reply.items)
    assert all("matches" in i.reason for i in reply.items)

    by_track = await recs.recommend("never-seen", limit=5, seeds=pb.Seeds(
        track_ids=[track("rock", 3)]), weights={"popularity": 0})
    assert by_track.items[0].track_id.startswith("rock")
    assert "because you picked rock 3" in by_track.items[0].reason

    by_artist = await recs.recommend("never-seen", limit=5, max_per_artist=0,
                                     seeds=pb.Seeds(artists=["jazz band 2"]),
                                     weights={"popularity": 0})
    assert {i.artist for i in by_artist.items} == {"jazz band 2"}

    by_tag = await recs.recommend("never-seen", limit=5, seeds=pb.Seeds(tags=["swing"]),
                                  weights={"popularity": 0})
    assert all(i.track_id.startswith("jazz") for i in by_tag.items)

    popular = await recs.recommend("never-seen", limit=5)
    assert popular.cold_start and popular.items
    assert all(i.reason == "popular with listeners" for i in popular.items)


async def test_similar_tracks_and_users(recs: Recs) -> None:
    await recs.train()
    tracks = await recs.stub.SimilarTracks(pb.SimilarTracksRequest(
        track_id=track("jazz", 4), limit=5), timeout=10)
    assert len(tracks.items) == 5
    assert all(i.track_id.startswith("jazz") and i.track_id != track("jazz", 4)
               for i in tracks.items)
    users = await recs.stub.SimilarUsers(pb.SimilarUsersRequest(user_id="rock-fan-2",
                                                                limit=5), timeout=10)
    assert len(users.users) == 5
    assert all(u.user_id.startswith("rock-fan") and u.user_id != "rock-fan-2"
               for u in users.users)
    assert users.users[0].similarity >= users.users[-1].similarity


async def test_serving_continues_while_a_model_trains(recs: Recs) -> None:
    run = (await recs.stub.TrainModel(pb.TrainModelRequest(), timeout=10)).run
    await recs.expect(grpc.StatusCode.FAILED_PRECONDITION,
                      recs.stub.TrainModel(pb.TrainModelRequest(), timeout=10),
                      "still running")
    served = 0
    while True:
        reply = await recs.recommend("jazz-fan-3", limit=5)
        assert reply.items
        served += 1
        status = await recs.stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=10)
        if status.latest_run.run_id == run.run_id and status.latest_run.state != "running":
            break
    assert served >= 1
    assert status.latest_run.state == "succeeded"
    assert (await recs.recommend("jazz-fan-3")).model_version == status.model_version


async def test_bad_requests_say_what_to_fix(recs: Recs) -> None:
    bad = grpc.StatusCode.INVALID_ARGUMENT
    await recs.expect(bad, recs.recommend("u", weights={"content": -1.0}), "weights[content]")
    await recs.expect(bad, recs.recommend("u", weights={k: 0.0 for k in (
        "collaborative", "content", "seeds", "popularity", "targets")}), "all weights are zero")
    await recs.expect(bad, recs.recommend("u", weights={"vibes": 1.0}), "unknown name")
    await recs.expect(bad, recs.recommend("u", limit=0), "limit", "between 1 and 100")
    await recs.expect(bad, recs.recommend("u", limit=101), "limit")
    await recs.expect(bad, recs.recommend(""), "user_id")
    await recs.expect(bad, recs.recommend("u", targets=pb.AudioTargets(
        min_tempo_bpm=140, max_tempo_bpm=90)), "targets.min_tempo_bpm")
    await recs.expect(bad, recs.recommend("u", targets=pb.AudioTargets(target_key=12)),
                      "targets.target_key")
    await recs.expect(grpc.StatusCode.NOT_FOUND, recs.recommend(
        "u", seeds=pb.Seeds(track_ids=["no-such-track"])), "seeds.track_ids[0]")
    await recs.expect(grpc.StatusCode.NOT_FOUND, recs.stub.SimilarTracks(
        pb.SimilarTracksRequest(track_id="no-such-track"), timeout=10), "no-such-track")
    await recs.expect(bad, recs.stub.TrainModel(pb.TrainModelRequest(algorithm="magic"),
                                                timeout=10), "algorithm")


async def test_a_waiting_train_call_ends_with_its_run_and_cancelling_it_stops_the_run(
        recs: Recs, monkeypatch: pytest.MonkeyPatch) -> None:
    run = (await recs.stub.TrainModel(pb.TrainModelRequest(wait=True), timeout=120)).run
    assert run.state == "succeeded" and run.model_version  # returned finished
    published = (await recs.stub.GetModelStatus(pb.GetModelStatusRequest(),
                                                timeout=10)).model_version

    fit = fitting.fit

    def slow_fit(*args: Any, **kwargs: Any) -> Any:  # a catalogue big enough to take a while
        time.sleep(1.5)
        return fit(*args, **kwargs)

    monkeypatch.setattr(fitting, "fit", slow_fit)
    call = recs.stub.TrainModel(pb.TrainModelRequest(wait=True), timeout=120)
    for _ in range(100):
        status = await recs.stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=10)
        if status.latest_run.run_id != run.run_id and status.latest_run.state == "running":
            break
        await asyncio.sleep(0.02)
    assert status.latest_run.state == "running"
    call.cancel()  # what the gateway does when its operation is cancelled
    for _ in range(200):
        status = await recs.stub.GetModelStatus(pb.GetModelStatusRequest(), timeout=10)
        if status.latest_run.state != "running":
            break
        await asyncio.sleep(0.05)
    assert status.latest_run.state == "cancelled"
    assert status.model_version == published  # the cancelled run published nothing
