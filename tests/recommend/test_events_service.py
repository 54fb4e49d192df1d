"""RecordEvent / RecordEvents over gRPC: real recommend server, real retrieval catalog.

Only the events part of the service is built (event store, catalog client, event log),
so these tests do not depend on training or the model store.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import AsyncIterator, Iterable

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from cadenza.kit.server import App, Binding, RunningServer, serve_in_process
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.recommend.app import SERVICE
from services.recommend.catalog import RetrievalCatalog
from services.recommend.event_log import EventLog
from services.recommend.event_store import SqliteEventStore as EventStore
from services.recommend.servicer import RecommendServicer
from services.retrieval.app import build_retrieval
from services.retrieval.settings import RetrievalSettings

MODEL_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / "text"
TRACKS = ("song-1", "song-2", "song-3")
pytestmark = [
    pytest.mark.skipif(not (MODEL_DIR / "model_card.json").exists(),
                       reason="run `make text-model` first (make test does)"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def retrieval_address(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A real retrieval server holding a few metadata-only tracks."""
    settings = RetrievalSettings(port=0, metrics_port=-1, text_model_dir=str(MODEL_DIR),
                                 data_dir=str(tmp_path_factory.mktemp("retrieval")))
    app = await build_retrieval(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    address = f"127.0.0.1:{running.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for track_id in TRACKS:
            await stub.IngestTrack(iter([rpb.IngestTrackRequest(header=rpb.IngestHeader(
                metadata=rpb.TrackMetadata(track_id=track_id, title=track_id)))]), timeout=30)
    yield address
    await running.server.stop(None)
    await app.close()


class Recommend:
    def __init__(self, server: RunningServer, events: EventLog) -> None:
        self.server = server
        self.events = events
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = recommend_pb2_grpc.RecommendServiceStub(self.channel)

    async def record(self, event: pb.Event) -> pb.RecordEventResponse:
        return await self.stub.RecordEvent(pb.RecordEventRequest(event=event), timeout=10)

    async def record_many(self, events: Iterable[pb.Event]) -> pb.RecordEventsResponse:
        async def requests() -> AsyncIterator[pb.RecordEventsRequest]:
            for event in events:
                yield pb.RecordEventsRequest(event=event)
        return await self.stub.RecordEvents(requests(), timeout=30)

    async def expect(self, code: grpc.StatusCode, event: pb.Event, *fragments: str) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.record(event)
        details = str(caught.value.details())
        assert caught.value.code() == code, details
        for fragment in fragments:
            assert fragment in details, details
        return details


@pytest_asyncio.fixture(loop_scope="module")
async def recommend(retrieval_address: str, tmp_path: pathlib.Path
                    ) -> AsyncIterator[Recommend]:
    """The events part of the recommend service, wired as app.py wires it."""
    catalog = RetrievalCatalog(retrieval_address)
    events = EventLog(EventStore.open(tmp_path / "events.sqlite3"), catalog, 300.0,
                      chunk_events=4)
    servicer = RecommendServicer(events, recommender=None, trainer=None)  # type: ignore[arg-type]
    app = App(bindings=[Binding(SERVICE, lambda server: recommend_pb2_grpc.
                                add_RecommendServiceServicer_to_server(servicer, server))])
    service = Recommend(await serve_in_process(app), events)
    yield service
    await service.channel.close()
    await service.server.server.stop(None)
    await catalog.close()
    await events.close()


def play(event_id: str, track_id: str = "song-1", *, user_id: str = "ada",
         at: float | None = None, **fields: object) -> pb.Event:
    event = pb.Event(event_id=event_id, user_id=user_id, track_id=track_id,
                     kind=pb.EVENT_KIND_PLAY, **fields)  # type: ignore[arg-type]
    if at is not None:
        event.occurred_at.FromNanoseconds(int(at * 1e9))
    return event


async def test_a_repeated_event_id_is_a_duplicate_stored_once(recommend: Recommend) -> None:
    assert (await recommend.record(play("e-1", at=time.time() - 60))).duplicate is False
    assert (await recommend.record(play("e-1", at=time.time() - 60))).duplicate is True
    assert await recommend.events.count() == 1
    [engagement] = await recommend.events.engagements("ada")
    assert engagement.value == 1.0


async def test_an_unset_time_means_now(recommend: Recommend) -> None:
    before = time.time()
    await recommend.record(play("e-now"))
    [engagement] = await recommend.events.engagements("ada")
    assert before - 1 <= engagement.last_at_unix_s <= time.time() + 1


async def test_an_unknown_track_is_not_found_by_name(recommend: Recommend) -> None:
    await recommend.expect(grpc.StatusCode.NOT_FOUND, play("e-2", "no-such-song"),
                           "event.track_id", "'no-such-song'")
    assert await recommend.events.count() == 0


async def test_a_malformed_timestamp_is_invalid(recommend: Recommend) -> None:
    event = play("e-3")
    event.occurred_at.CopyFrom(Timestamp(seconds=int(time.time()), nanos=-1))
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, event, "event.occurred_at",
                           "nanos")


async def test_a_future_timestamp_is_invalid(recommend: Recommend) -> None:
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT,
                           play("e-4", at=time.time() + 3600),
                           "event.occurred_at", "in the future", "300 s of clock skew")


async def test_an_unknown_kind_is_invalid_and_lists_the_kinds(recommend: Recommend) -> None:
    event = play("e-5")
    event.kind = 99  # type: ignore[assignment]
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, event, "event.kind",
                           "unknown value 99", "EVENT_KIND_PLAY", "EVENT_KIND_DISLIKE")


async def test_other_bad_fields_are_invalid(recommend: Recommend) -> None:
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, play("e-6", completion=1.5),
                           "event.completion")
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, play("e-6", count=-1),
                           "event.count")
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, play(""), "event.event_id")
    await recommend.expect(grpc.StatusCode.INVALID_ARGUMENT, pb.Event(), "event.kind")


async def test_a_batch_stores_the_good_events_and_reports_each_bad_one(
        recommend: Recommend) -> None:
    bad_kind = play("b-3")
    bad_kind.kind = 42  # type: ignore[assignment]
    batch = [play("b-0"), play("b-1", "song-2"), play("b-2", "gone-song"), bad_kind,
             play("b-4", at=time.time() + 86_400), play("b-5", "song-3"), play("b-6"),
             play("b-7", completion=0.1)]
    reply = await recommend.record_many(batch)
    assert (reply.stored, reply.duplicates) == (5, 0)
    rejected = [(r.index, r.event_id) for r in reply.rejected]
    assert rejected == [(2, "b-2"), (3, "b-3"), (4, "b-4")]
    reasons = [r.reason for r in reply.rejected]
    assert reasons[0].startswith("event.track_id") and "'gone-song'" in reasons[0]
    assert reasons[1].startswith("event.kind") and "unknown value 42" in reasons[1]
    assert reasons[2].startswith("event.occurred_at") and "future" in reasons[2]
    assert await recommend.events.count() == 5


async def test_a_resent_batch_is_all_duplicates(recommend: Recommend) -> None:
    batch = [play(f"r-{i}", TRACKS[i % 3]) for i in range(10)]
    first = await recommend.record_many([*batch, batch[0]])  # repeated within the stream
    assert (first.stored, first.duplicates, len(first.rejected)) == (10, 1, 0)
    again = await recommend.record_many(batch)
    assert (again.stored, again.duplicates) == (0, 10)
    assert await recommend.events.count() == 10


async def test_an_empty_batch_stores_nothing(recommend: Recommend) -> None:
    reply = await recommend.record_many([])
    assert (reply.stored, reply.duplicates, len(reply.rejected)) == (0, 0, 0)
