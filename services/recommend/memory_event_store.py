"""The in-memory adapter of the EventStore port: for tests and throwaway one-process runs.

Same answers as the SQLite store, but nothing survives the process: an event it
acknowledged is gone after a crash or restart, so production uses SQLite.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from services.recommend.events import Engagement, Event, EventKind

_OPINIONS = (EventKind.LIKE, EventKind.DISLIKE)


@dataclass(frozen=True)
class _Row:
    """What is kept of an event: the fields engagements are computed from."""

    sequence: int
    user_id: str
    track_id: str
    kind: EventKind
    occurred_at_unix_s: float
    value: float


class MemoryEventStore:
    """The EventStore port in a dict; one lock makes every call safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._rows: list[_Row] = []
        self._closed = False

    def add(self, events: list[Event]) -> list[bool]:
        """Stores the events all together or none of them; per event, True when newly
        stored and False when its event_id was already there (or earlier in the list)."""
        with self._lock:
            self._check_open()
            # Build every row before keeping any, so a bad event leaves the store as it was.
            seen = set(self._ids)
            new: list[tuple[str, _Row]] = []
            stored: list[bool] = []
            for event in events:
                fresh = event.event_id not in seen
                stored.append(fresh)
                if fresh:
                    seen.add(event.event_id)
                    new.append((event.event_id, _Row(
                        len(self._rows) + len(new) + 1, event.user_id, event.track_id,
                        EventKind(event.kind.value), float(event.occurred_at_unix_s),
                        float(event.value))))
            for event_id, row in new:
                self._ids.add(event_id)
                self._rows.append(row)
            return stored

    def count(self) -> int:
        """How many events are stored."""
        with self._lock:
            self._check_open()
            return len(self._rows)

    def last_sequence(self) -> int:
        """The sequence of the newest event; 0 when the store is empty."""
        return self.count()

    def engagements(self, user_id: str) -> list[Engagement]:
        """The user's net evidence per track they have events for."""
        with self._lock:
            self._check_open()
            return _engagements([r for r in self._rows if r.user_id == user_id])

    def all_engagements(self) -> list[Engagement]:
        """Every user's engagements (one snapshot: taken under the lock)."""
        with self._lock:
            self._check_open()
            return _engagements(self._rows)

    def close(self) -> None:
        """Drops the events; no call may follow."""
        with self._lock:
            self._closed = True
            self._ids.clear()
            self._rows.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the event store is closed")


def _engagements(rows: list[_Row]) -> list[Engagement]:
    """Net value, last time and the latest opinion per (user, track), sorted by them."""
    value: dict[tuple[str, str], float] = {}
    last_at: dict[tuple[str, str], float] = {}
    # The latest like or dislike: by time, ties to the one stored last (rows are in order).
    opinion: dict[tuple[str, str], _Row] = {}
    for row in rows:
        key = (row.user_id, row.track_id)
        value[key] = value.get(key, 0.0) + row.value
        last_at[key] = max(last_at.get(key, row.occurred_at_unix_s), row.occurred_at_unix_s)
        if row.kind in _OPINIONS and (
                key not in opinion
                or row.occurred_at_unix_s >= opinion[key].occurred_at_unix_s):
            opinion[key] = row
    return [Engagement(user, track, value[(user, track)],
                       (user, track) in opinion
                       and opinion[(user, track)].kind is EventKind.DISLIKE,
                       last_at[(user, track)])
            for user, track in sorted(value)]
