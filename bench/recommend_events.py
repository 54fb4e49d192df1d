"""Durable event ingest: RecordEvents / RecordEvent through a real server, against plain
sqlite3 writing the same rows to the same kind of file (WAL, fsync on commit), and against
the same stream into a handler that only counts (what gRPC itself costs per message)."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator

import grpc.aio

from bench.harness import Row, print_table
from cadenza.kit.server import App, Binding, serve_in_process
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend.app import SERVICE
from services.recommend.catalog import CandidateFilter, CatalogTrack, Scored
from services.recommend.event_convert import event_from_pb
from services.recommend.event_log import EventLog
from services.recommend.event_store import INSERT, SCHEMA, SqliteEventStore, event_row
from services.recommend.memory_event_store import MemoryEventStore
from services.recommend.memory_model_store import MemoryModelStore
from services.recommend.recommender import Recommender
from services.recommend.servicer import RecommendServicer
from services.recommend.training import Trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRACKS = [f"track-{i}" for i in range(1000)]


class EveryTrack:
    """A catalog where every track exists, untitled, and searches find nothing: the
    retrieval lookup is left out (the real client caches found tracks, so a steady
    stream costs it one call per new track)."""

    async def missing(self, track_ids: list[str]) -> set[str]:
        """Nothing is missing."""
        return set()

    async def tracks(self, track_ids: list[str]) -> dict[str, CatalogTrack]:
        """Every id is a track without a title, artist, tags or features."""
        return {t: CatalogTrack(t, "", "") for t in track_ids}

    async def like_examples(self, positive: list[str], negative: list[str],
                            where: CandidateFilter, limit: int) -> list[Scored]:
        """No track is like another."""
        return []

    async def search_text(self, text: str, where: CandidateFilter, limit: int) -> list[Scored]:
        """No text matches."""
        return []

    async def matching(self, where: CandidateFilter, limit: int) -> list[CatalogTrack]:
        """No track is listed."""
        return []


def servicer(events: EventLog,
             kind: type[RecommendServicer] = RecommendServicer) -> RecommendServicer:
    """The service over these events; recommending and training (unused here) run on an
    in-memory model store and the catalog above."""
    catalog, models = EveryTrack(), MemoryModelStore()
    return kind(events, Recommender(events, catalog, models),
                Trainer(events.store, models, "ensemble", interval_s=0))


class CountOnly(RecommendServicer):
    """Reads a RecordEvents stream and stores nothing: the transport's own ceiling."""

    async def RecordEvents(self, request_iterator: AsyncIterator[pb.RecordEventsRequest],
                           context: object) -> pb.RecordEventsResponse:
        """Counts the stream's messages and stores none."""
        stored = 0
        async for _ in request_iterator:
            stored += 1
        return pb.RecordEventsResponse(stored=stored)


def _events(prefix: str, count: int) -> list[pb.Event]:
    now = int(time.time()) - 3600
    events = []
    for i in range(count):
        event = pb.Event(event_id=f"{prefix}-{i}", user_id=f"user-{i % 500}",
                         track_id=TRACKS[i * 7 % len(TRACKS)], kind=pb.EVENT_KIND_PLAY,
                         listened_ms=120_000, completion=0.8)
        event.occurred_at.seconds = now + i % 3600
        events.append(event)
    return events


async def _ingest(servicer: recommend_pb2_grpc.RecommendServiceServicer,
                  batch: list[pb.Event], stream_events: int, singles: list[pb.Event]
                  ) -> tuple[float, float]:
    """Seconds for the batch (in streams of stream_events) and for the singles, one by one."""
    running = await serve_in_process(App(bindings=[Binding(
        SERVICE, lambda server: recommend_pb2_grpc.add_RecommendServiceServicer_to_server(
            servicer, server))]))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = recommend_pb2_grpc.RecommendServiceStub(channel)

            async def stream(part: list[pb.Event]) -> AsyncIterator[pb.RecordEventsRequest]:
                for event in part:
                    yield pb.RecordEventsRequest(event=event)

            started = time.perf_counter()
            for start in range(0, len(batch), stream_events):
                reply = await stub.RecordEvents(stream(batch[start:start + stream_events]))
                assert reply.stored == len(batch[start:start + stream_events]), reply
            batch_s = time.perf_counter() - started
            started = time.perf_counter()
            for event in singles:
                await stub.RecordEvent(pb.RecordEventRequest(event=event))
            singles_s = time.perf_counter() - started
    finally:
        await running.server.stop(None)
    return batch_s, singles_s


async def _ours(data_dir: pathlib.Path, batch: list[pb.Event], stream_events: int,
                singles: list[pb.Event]) -> tuple[float, float]:
    events = EventLog(SqliteEventStore.open(data_dir / "ours.sqlite3"), EveryTrack(), 300.0)
    try:
        return await _ingest(servicer(events), batch, stream_events, singles)
    finally:
        await events.close()


def _floor(data_dir: pathlib.Path, batch: list[pb.Event], singles: list[pb.Event]
           ) -> tuple[float, float]:
    """The same rows with plain sqlite3: the batch in one executemany transaction, the
    singles one commit each (both fsynced, as ours)."""
    db = sqlite3.connect(data_dir / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    rows = [event_row(event_from_pb(e)) for e in batch]
    single_rows = [event_row(event_from_pb(e)) for e in singles]
    started = time.perf_counter()
    db.execute("BEGIN")
    db.executemany(INSERT, rows)
    db.execute("COMMIT")
    batch_s = time.perf_counter() - started
    started = time.perf_counter()
    for row in single_rows:
        db.execute(INSERT, row)  # autocommit: one transaction each
    singles_s = time.perf_counter() - started
    db.close()
    return batch_s, singles_s


def measure_event_ingest(events: int = 50_000, stream_events: int = 10_000,
                         single_events: int = 1_000,
                         data_dir: pathlib.Path | None = None) -> list[Row]:
    """Events per second stored durably, ours vs plain sqlite3. The files go in data_dir
    (default: a temporary folder under .data/, on the disk the services use; /tmp may be
    a tmpfs where fsync costs nothing)."""
    batch, singles = _events("batch", events), _events("single", single_events)
    parent = data_dir or ROOT / ".data"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix="bench-events-") as tmp:
        ours_batch, ours_singles = asyncio.run(
            _ours(pathlib.Path(tmp), batch, stream_events, singles))
        floor_batch, floor_singles = _floor(pathlib.Path(tmp), batch, singles)
    count_only = servicer(EventLog(MemoryEventStore(), EveryTrack(), 300.0), CountOnly)
    transport_s, _ = asyncio.run(_ingest(count_only, batch, stream_events, []))
    return [
        Row("event ingest, RecordEvents", f"{events} events, streams of {stream_events}",
            f"{events / ours_batch:,.0f} events/s", f"{events / floor_batch:,.0f} events/s",
            f"{floor_batch / ours_batch:.2f}",
            "durable (WAL, synchronous=FULL), commit per 500; ref: one executemany"),
        Row("event ingest vs gRPC alone", f"{events} events, streams of {stream_events}",
            f"{events / ours_batch:,.0f} events/s", f"{events / transport_s:,.0f} msgs/s",
            f"{transport_s / ours_batch:.2f}",
            "ref: same stream into a handler that only counts; client in the same process"),
        Row("event ingest, RecordEvent", f"{single_events} events, one at a time",
            f"{single_events / ours_singles:,.0f} events/s",
            f"{single_events / floor_singles:,.0f} events/s",
            f"{floor_singles / ours_singles:.2f}",
            "one fsynced commit each; ref: one INSERT commit each"),
    ]


def run() -> list[Row]:
    """Measures and prints the event ingest table."""
    rows = measure_event_ingest()
    print_table("Recommend event ingest (ours: durable, through gRPC; reference: see note)",
                rows, "ours", "reference")
    return rows


if __name__ == "__main__":
    run()
