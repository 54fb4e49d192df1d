"""EventLog over a real store and an in-memory catalog: chunking, rejections, limits."""

from __future__ import annotations

import contextlib
import gc
import pathlib
from collections.abc import AsyncIterator, Iterable

import pytest

from cadenza.kit.errors import NotFound, ResourceExhausted
from services.recommend.event_log import CACHED_HISTORIES, EventLog, Malformed
from services.recommend.event_store import SqliteEventStore as EventStore
from services.recommend.events import Engagement, Event, EventKind

NOW = 1_750_000_000.0


class KnownTracks:
    """A catalog that knows a fixed set of ids and counts the lookups."""

    def __init__(self, track_ids: Iterable[str]) -> None:
        self.track_ids = set(track_ids)
        self.lookups: list[list[str]] = []

    async def missing(self, track_ids: list[str]) -> set[str]:
        self.lookups.append(track_ids)
        return {t for t in track_ids if t not in self.track_ids}


def play(event_id: str, track: str = "t1") -> Event:
    return Event(event_id, "u1", track, EventKind.PLAY, NOW - 10)


async def stream(items: Iterable[Event | Malformed]) -> AsyncIterator[Event | Malformed]:
    for item in items:
        yield item


@pytest.fixture
async def log(tmp_path: pathlib.Path) -> AsyncIterator[EventLog]:
    events = EventLog(EventStore.open(tmp_path / "events.sqlite3"), KnownTracks(["t1", "t2"]),
                      300.0, chunk_events=4, max_batch_events=20, clock=lambda: NOW)
    yield events
    await events.close()


async def test_one_catalog_lookup_and_commit_per_chunk(log: EventLog) -> None:
    result = await log.record_many(stream(play(f"e{i}", f"t{1 + i % 2}") for i in range(10)))
    assert (result.stored, result.duplicates, result.rejected) == (10, 0, [])
    catalog = log.catalog
    assert isinstance(catalog, KnownTracks)
    assert len(catalog.lookups) == 3  # chunks of 4, 4 and 2
    assert all(sorted(ids) == ["t1", "t2"] for ids in catalog.lookups[:2])  # deduplicated
    assert log.store.last_sequence() == 10


async def test_bad_items_are_rejected_in_stream_order(log: EventLog) -> None:
    items = [play("a"), play("b", "nope"), Malformed("c", "event.kind: unknown value 9"),
             play("d"), play(""), play("a"), play("f", "nope2")]
    result = await log.record_many(stream(items))
    assert (result.stored, result.duplicates) == (2, 1)
    assert [(r.index, r.event_id) for r in result.rejected] == [
        (1, "b"), (2, "c"), (4, ""), (6, "f")]
    assert "'nope'" in result.rejected[0].reason
    assert result.rejected[0].reason.startswith("event.track_id")
    assert result.rejected[2].reason.startswith("event.event_id")


async def test_a_batch_over_the_limit_is_refused_after_storing_the_first_part(
        log: EventLog) -> None:
    with pytest.raises(ResourceExhausted, match="at most 20 events; split it"):
        await log.record_many(stream(play(f"e{i}") for i in range(25)))
    assert await log.count() == 20


async def test_watchers_hear_whose_events_were_stored(log: EventLog) -> None:
    heard: list[set[str]] = []
    log.on_stored(heard.append)

    def broken(users: set[str]) -> None:
        raise RuntimeError("a watcher's fault")

    log.on_stored(broken)  # must not turn a stored event into an error for the caller
    assert await log.record(play("a")) is False
    assert await log.record(play("a")) is True  # a duplicate: nothing new
    u2 = Event("b", "u2", "t2", EventKind.LIKE, NOW - 5)
    result = await log.record_many(stream([play("a"), u2, play("c", "nope")]))
    assert (result.stored, result.duplicates, len(result.rejected)) == (1, 1, 1)
    assert heard == [{"u1"}, {"u2"}]  # u1's batch event was a duplicate


async def test_single_event_unknown_track_is_not_found(log: EventLog) -> None:
    with pytest.raises(NotFound, match=r"event\.track_id: no track 'zzz'"):
        await log.record(play("x", "zzz"))
    assert await log.record(play("x")) is False
    assert await log.record(play("x")) is True
    [engagement] = await log.engagements("u1")
    assert engagement.value == 1.0


class CountingStore(EventStore):
    """The SQLite store, counting engagement reads and failing adds on demand."""

    reads = 0
    fail_next_add = False

    def engagements(self, user_id: str) -> list[Engagement]:
        self.reads += 1
        return super().engagements(user_id)

    def add(self, events: list[Event]) -> list[bool]:
        stored = super().add(events)
        if self.fail_next_add:
            self.fail_next_add = False
            raise OSError("disk full")  # after the commit: the store moved, the call failed
        return stored


@contextlib.asynccontextmanager
async def counting_log(tmp_path: pathlib.Path, cached_histories: int = CACHED_HISTORIES
                       ) -> AsyncIterator[tuple[EventLog, CountingStore]]:
    """An EventLog over a CountingStore, closed after the block."""
    store = CountingStore.open(tmp_path / "events.sqlite3")
    assert isinstance(store, CountingStore)
    log = EventLog(store, KnownTracks(["t1", "t2"]), 300.0,
                   cached_histories=cached_histories, clock=lambda: NOW)
    try:
        yield log, store
    finally:
        await log.close()


async def test_engagements_are_read_once_until_the_users_next_event(
        tmp_path: pathlib.Path) -> None:
    async with counting_log(tmp_path) as (log, store):
        await log.record(play("a"))
        first = await log.engagements("u1")
        first.clear()  # a caller's own list: the kept one is untouched
        assert [e.track_id for e in await log.engagements("u1")] == ["t1"]
        assert store.reads == 1
        await log.record(Event("o", "u2", "t2", EventKind.LIKE, NOW - 5))  # another user
        await log.engagements("u1")
        assert store.reads == 1
        await log.record(Event("b", "u1", "t2", EventKind.DISLIKE, NOW - 5))
        after = {e.track_id: e.disliked for e in await log.engagements("u1")}
        assert after == {"t1": False, "t2": True}  # the acknowledged event is seen at once
        assert store.reads == 2
        store.fail_next_add = True
        with pytest.raises(OSError):
            await log.record(Event("c", "u1", "t2", EventKind.LIKE, NOW - 1))
        assert {e.track_id: e.disliked for e in await log.engagements("u1")} == {
            "t1": False, "t2": False}  # a failed call drops what was kept too


async def test_no_engagements_are_kept_with_the_cache_off(tmp_path: pathlib.Path) -> None:
    async with counting_log(tmp_path, cached_histories=0) as (log, store):
        await log.record(play("a"))
        for _ in range(3):
            await log.engagements("u1")
        assert store.reads == 3


async def test_the_oldest_read_user_is_dropped_past_the_size(tmp_path: pathlib.Path) -> None:
    async with counting_log(tmp_path, cached_histories=2) as (log, store):
        for user in ("u1", "u2", "u3"):
            await log.engagements(user)
        await log.engagements("u3")
        await log.engagements("u2")
        assert store.reads == 3
        await log.engagements("u1")  # dropped when u3 was read
        assert store.reads == 4


async def test_a_kept_history_equals_the_stores_and_leaves_the_collectors_view(
        tmp_path: pathlib.Path) -> None:
    async with counting_log(tmp_path) as (log, store):
        await log.record(Event("a", "u1", "t1", EventKind.PLAY, NOW - 10, count=3))
        await log.record(Event("b", "u1", "t2", EventKind.DISLIKE, NOW - 5))
        read = await log.engagements("u1")  # from the store
        kept = await log.engagements("u1")
        assert store.reads == 1
        assert kept == read == store.engagements("u1")
        for _ in range(3):  # nested tuples are untracked one level per collection
            gc.collect()
        # What stays tracked is walked by every full collection: 75k Engagements of the
        # active users stalled calls for 100-350 ms.
        assert not any(gc.is_tracked(h) for h in log._histories.values())
