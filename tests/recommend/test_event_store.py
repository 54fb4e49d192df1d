"""What only the SQLite event store promises: durability settings, the stored row, a
reader that never waits for the writer. The port's behaviour is in
test_event_store_contract.py."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Iterator

import pytest

from services.recommend.event_store import SqliteEventStore as EventStore
from services.recommend.events import Event, EventKind

T0 = 1_700_000_000.0


def event(event_id: str, kind: EventKind = EventKind.PLAY, *, user: str = "u1",
          track: str = "t1", at: float = T0, **fields: object) -> Event:
    return Event(event_id, user, track, kind, at, **fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[EventStore]:
    opened = EventStore.open(tmp_path / "nested" / "events.sqlite3")
    yield opened
    opened.close()


def test_wal_mode_and_full_sync_are_set(store: EventStore) -> None:
    db = store._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Another connection sees WAL too: the mode is persistent in the file.
    other = sqlite3.connect(store.path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_reopening_keeps_the_events(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.sqlite3"
    first = EventStore.open(path)
    first.add([event("a", completion=0.5, listened_ms=90_000, playlist_id="p1"),
               event("b", EventKind.DISLIKE)])
    first.close()
    again = EventStore.open(path)
    assert again.count() == 2 and again.last_sequence() == 2
    assert again.add([event("a"), event("c")]) == [False, True]
    assert again.last_sequence() == 3
    [row] = again._db.execute("SELECT kind, listened_ms, completion, playlist_id, count, value "
                              "FROM events WHERE event_id = 'a'")
    assert row == ("play", 90_000, 0.5, "p1", 1, 1.0)
    again.close()


def test_all_engagements_reads_while_the_writer_is_in_a_transaction(
        store: EventStore) -> None:
    store.add([event("a")])
    store._db.execute("BEGIN IMMEDIATE")  # a write in progress, not yet committed
    store._db.execute("INSERT INTO events VALUES ('x', 'u1', 't9', 'play', 1.7e9, 0, NULL, "
                      "'', 1, 1.0)")
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(len(store.all_engagements())))
    reader.start()
    reader.join(timeout=10)
    store._db.execute("COMMIT")
    assert seen == [1]  # the committed snapshot, without waiting for the writer
