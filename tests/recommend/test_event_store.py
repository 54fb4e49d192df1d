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


def test_a_schema_1_file_gets_the_covering_index_and_reads_the_same(
        tmp_path: pathlib.Path) -> None:
    """Schema 1 indexed user_id alone; opening the file replaces that index with one
    that covers a user's history, and the engagements read are the same."""
    path = tmp_path / "events.sqlite3"
    first = EventStore.open(path)
    first.add([event("a", count=3), event("b", EventKind.LIKE, track="t2"),
               event("c", EventKind.DISLIKE, track="t2", at=T0 + 5),
               event("d", EventKind.SKIP, track="t3", user="u2")])
    first._db.executescript("DROP INDEX events_by_user_track; "
                            "CREATE INDEX events_by_user ON events (user_id); "
                            "PRAGMA user_version=1;")
    before = {user: first.engagements(user) for user in ("u1", "u2")}
    first.close()
    again = EventStore.open(path)
    indexes = {name for (name,) in again._db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NOT NULL")}
    assert indexes == {"events_by_user_track"}
    assert again._db.execute("PRAGMA user_version").fetchone()[0] == 2
    [plan] = [row[3] for row in again._db.execute(
        "EXPLAIN QUERY PLAN SELECT track_id, SUM(value) FROM events WHERE user_id = ? "
        "GROUP BY user_id, track_id", ("u1",))]
    assert "COVERING INDEX events_by_user_track" in plan
    assert {user: again.engagements(user) for user in ("u1", "u2")} == before
    assert before["u1"] and before["u2"]
    again.close()
