"""Recording behaviour events: checks, catalog lookups, durable idempotent storage.

An event is acknowledged only after the transaction holding it committed (fsynced), so
an acknowledged event survives a crash. Batches are checked and committed in chunks: one
catalog lookup and one transaction per chunk keeps a long stream fast, and each chunk
is durable before the next is read. A bad event in a batch is rejected with its reason
while the others are stored.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from cadenza.kit.errors import InvalidArgument, NotFound, ResourceExhausted
from cadenza.kit.validate import check_id
from services.recommend import metrics
from services.recommend.events import Engagement, Event, EventStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Nothing in the catalog's world happened before this (it catches seconds-since-epoch
# zeros and other unset clocks).
EARLIEST_UNIX_S = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC).timestamp()
MAX_COUNT = 1_000_000
MAX_LISTENED_MS = 86_400_000  # one play lasting over a day is a client bug
CHUNK_EVENTS = 500
MAX_BATCH_EVENTS = 100_000
CACHED_HISTORIES = 20_000


def _iso(unix_s: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(unix_s, datetime.UTC).isoformat(
            timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return f"{unix_s} s since 1970"


def check_event(field: str, event: Event, now_unix_s: float, max_clock_skew_s: float) -> None:
    """Raises InvalidArgument naming the first field of event that is not acceptable."""
    check_id(f"{field}.event_id", event.event_id)
    check_id(f"{field}.user_id", event.user_id)
    check_id(f"{field}.track_id", event.track_id)
    at = event.occurred_at_unix_s
    if not math.isfinite(at):
        raise InvalidArgument(f"{field}.occurred_at", f"must be a finite time, got {at}")
    if at > now_unix_s + max_clock_skew_s:
        raise InvalidArgument(f"{field}.occurred_at", (
            f"{_iso(at)} is in the future (server time {_iso(now_unix_s)}, "
            f"{max_clock_skew_s:.0f} s of clock skew tolerated); send when it happened, "
            "or leave it unset for now"))
    if at < EARLIEST_UNIX_S:
        raise InvalidArgument(f"{field}.occurred_at", (
            f"{_iso(at)} is before 2000-01-01; send when it happened, or leave it unset "
            "for now"))
    if not 0 <= event.listened_ms <= MAX_LISTENED_MS:
        raise InvalidArgument(f"{field}.listened_ms", f"must be 0-{MAX_LISTENED_MS} (a day), "
                                                      f"got {event.listened_ms}")
    if event.completion is not None and not 0.0 <= event.completion <= 1.0:
        raise InvalidArgument(f"{field}.completion",
                              f"must be a fraction within [0, 1], got {event.completion}")
    if event.playlist_id:
        check_id(f"{field}.playlist_id", event.playlist_id)
    if not 1 <= event.count <= MAX_COUNT:
        raise InvalidArgument(f"{field}.count",
                              f"must be between 1 and {MAX_COUNT} (0 = 1), got {event.count}")


def unknown_track(field: str, track_id: str) -> str:
    """The rejection reason for an event whose track the catalog lacks."""
    return (f"{field}.track_id: no track {track_id[:128]!r} in the catalog; ingest the track "
            "first or fix the id")


class TrackLookup(Protocol):
    """The one thing recording needs from the catalog (`Catalog` provides it)."""

    async def missing(self, track_ids: list[str]) -> set[str]:
        """The ids that are not catalog tracks."""


@dataclass(frozen=True)
class Malformed:
    """A batch item that could not even be read as an event; reason names the field."""

    event_id: str
    reason: str


@dataclass(frozen=True)
class Rejection:
    """An event of a batch that was not stored, and why."""

    index: int  # 0-based position in the batch
    event_id: str
    reason: str


@dataclass
class BatchResult:
    """What a batch did: events stored, duplicates, rejections in batch order."""

    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


# A cached engagement without its user: (track_id, value, disliked, last_at_unix_s).
_Row = tuple[str, float, bool, float]


class EventLog:
    """The events domain service over a store and the catalog."""

    def __init__(self, store: EventStore, catalog: TrackLookup, max_clock_skew_s: float, *,
                 chunk_events: int = CHUNK_EVENTS, max_batch_events: int = MAX_BATCH_EVENTS,
                 cached_histories: int = CACHED_HISTORIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.catalog = catalog
        self.max_clock_skew_s = max_clock_skew_s
        self.chunk_events = chunk_events
        self.max_batch_events = max_batch_events
        self.clock = clock
        # One thread owns the SQLite writer: commits are serialised there and the event
        # loop never waits on an fsync.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="event-store")
        # Engagements per user as last read, so a Recommend whose user wrote nothing new
        # skips the store thread. Filled and invalidated only on the store thread, in the
        # same job as the read or the commit, so an entry never outlives an acknowledged
        # event (the event loop only reads it). Rows are never updated or deleted, and
        # this log is the store's only writer (one replica owns it). Kept as tuples of
        # plain values, not Engagements: CPython's collector stops tracking such tuples,
        # and as objects the histories of every active user (75k at Last.fm scale) made
        # each full collection walk them, stalling calls for 100-350 ms.
        self._histories: dict[str, tuple[_Row, ...]] = {}
        self._cached_histories = cached_histories
        self._stored_watchers: list[Callable[[set[str]], None]] = []

    def on_stored(self, watcher: Callable[[set[str]], None]) -> None:
        """Calls `watcher` (on the event loop) with the users whose new events were
        just committed."""
        self._stored_watchers.append(watcher)

    def _stored(self, users: set[str]) -> None:
        if not users:
            return
        for watcher in self._stored_watchers:
            try:
                watcher(users)
            except Exception:  # the events are stored: the caller must hear so
                logger.exception("a watcher of stored events failed")

    async def _on_store(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def record(self, event: Event) -> bool:
        """Stores one event durably; True when its event_id was already stored."""
        check_event("event", event, self.clock(), self.max_clock_skew_s)
        if await self.catalog.missing([event.track_id]):
            raise NotFound(unknown_track("event", event.track_id))
        [stored] = await self._on_store(self._add, [event])
        metrics.EVENTS.labels("stored" if stored else "duplicate").inc()
        if stored:
            self._stored({event.user_id})
        return not stored

    async def record_many(self, items: AsyncIterator[Event | Malformed]) -> BatchResult:
        """Stores a batch chunk by chunk; bad items are rejected, the rest stored."""
        result = BatchResult()
        chunk: list[tuple[int, Event]] = []
        index = -1
        async for item in items:
            index += 1
            if index >= self.max_batch_events:
                raise ResourceExhausted(
                    f"a batch holds at most {self.max_batch_events} events; split it into "
                    f"several streams (the first {self.max_batch_events} were handled, and "
                    "sending them again is safe: they count as duplicates)")
            if isinstance(item, Malformed):
                result.rejected.append(Rejection(index, item.event_id, item.reason))
                continue
            try:
                check_event("event", item, self.clock(), self.max_clock_skew_s)
            except InvalidArgument as error:
                result.rejected.append(Rejection(index, item.event_id, error.message))
                continue
            chunk.append((index, item))
            if len(chunk) >= self.chunk_events:
                await self._commit(chunk, result)
                chunk = []
        if chunk:
            await self._commit(chunk, result)
        result.rejected.sort(key=lambda r: r.index)
        metrics.EVENTS.labels("rejected").inc(len(result.rejected))
        return result

    async def _commit(self, chunk: list[tuple[int, Event]], result: BatchResult) -> None:
        missing = await self.catalog.missing(list({e.track_id for _, e in chunk}))
        good = []
        for index, event in chunk:
            if event.track_id in missing:
                result.rejected.append(Rejection(index, event.event_id,
                                                 unknown_track("event", event.track_id)))
            else:
                good.append(event)
        if good:
            stored = await self._on_store(self._add, good)
            self._stored({e.user_id for e, new in zip(good, stored, strict=True) if new})
            result.stored += sum(stored)
            result.duplicates += len(stored) - sum(stored)
            metrics.EVENTS.labels("stored").inc(sum(stored))
            metrics.EVENTS.labels("duplicate").inc(len(stored) - sum(stored))

    async def engagements(self, user_id: str) -> list[Engagement]:
        """The user's net evidence per track (empty for an unknown user)."""
        found = self._histories.get(user_id)
        if found is not None:
            metrics.HISTORY_CACHE.labels("hit").inc()
            return [Engagement(user_id, *row) for row in found]
        metrics.HISTORY_CACHE.labels("miss").inc()
        return await self._on_store(self._read, user_id)

    async def recent_users(self) -> list[str]:
        """The users whose engagements are held in memory (read lately, nothing recorded
        since), the most recently read first."""
        return await self._on_store(lambda: list(reversed(self._histories)))

    def _read(self, user_id: str) -> list[Engagement]:  # on the store thread
        history = self.store.engagements(user_id)
        if self._cached_histories > 0:
            while len(self._histories) >= self._cached_histories:
                del self._histories[next(iter(self._histories))]  # the oldest read
            self._histories[user_id] = tuple(
                (e.track_id, e.value, e.disliked, e.last_at_unix_s) for e in history)
        return list(history)

    def _add(self, events: list[Event]) -> list[bool]:  # on the store thread
        try:
            return self.store.add(events)
        finally:
            # Also after a failed commit: what it left in the store is not known here.
            for user_id in {e.user_id for e in events}:
                self._histories.pop(user_id, None)

    async def count(self) -> int:
        """How many events are stored."""
        return await self._on_store(self.store.count)

    async def close(self) -> None:
        """Closes the store after the writes already queued."""
        await self._on_store(self.store.close)
        self._executor.shutdown()
