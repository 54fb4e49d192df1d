"""EventStore on a real SQLite file: idempotency, aggregation, durability settings."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Iterator

import pytest

from services.recommend.event_store import EventStore
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


def test_duplicates_are_reported_and_stored_once(store: EventStore) -> None:
    assert store.add([event("a"), event("b")]) == [True, True]
    assert store.add([event("b"), event("c"), event("c")]) == [False, True, False]
    assert store.count() == 3
    assert store.last_sequence() == 3


def test_an_empty_store_has_sequence_zero(store: EventStore) -> None:
    assert store.count() == 0 and store.last_sequence() == 0
    assert store.engagements("nobody") == [] and store.all_engagements() == []


def test_engagements_sum_values_per_track(store: EventStore) -> None:
    store.add([
        event("p1", at=T0), event("p2", at=T0 + 10, count=3),
        event("s1", EventKind.SKIP, at=T0 + 20),
        event("short", at=T0 + 30, completion=0.1),  # a play cut short counts as a skip
        event("l1", EventKind.LIKE, track="t2", at=T0 + 5),
        event("other", user="u2", track="t1", at=T0 + 99),
    ])
    mine = {e.track_id: e for e in store.engagements("u1")}
    assert mine["t1"].value == pytest.approx(1 + 3 - 1 - 1)
    assert mine["t1"].last_at_unix_s == T0 + 30
    assert mine["t2"].value == pytest.approx(4.0)
    assert not mine["t1"].disliked and not mine["t2"].disliked
    assert {(e.user_id, e.track_id) for e in store.all_engagements()} == {
        ("u1", "t1"), ("u1", "t2"), ("u2", "t1")}


def test_a_dislike_stands_until_a_later_like(store: EventStore) -> None:
    store.add([
        # t1: liked, then disliked -> disliked
        event("a", EventKind.LIKE, track="t1", at=T0),
        event("b", EventKind.DISLIKE, track="t1", at=T0 + 1),
        # t2: disliked, then liked later (recorded first) -> not disliked
        event("c", EventKind.LIKE, track="t2", at=T0 + 5),
        event("d", EventKind.DISLIKE, track="t2", at=T0 + 1),
        # t3: disliked, plays after it do not lift it
        event("e", EventKind.DISLIKE, track="t3", at=T0),
        event("f", EventKind.PLAY, track="t3", at=T0 + 9),
        # t4: same instant: the one recorded last wins
        event("g", EventKind.DISLIKE, track="t4", at=T0),
        event("h", EventKind.LIKE, track="t4", at=T0),
    ])
    disliked = {e.track_id: e.disliked for e in store.engagements("u1")}
    assert disliked == {"t1": True, "t2": False, "t3": True, "t4": False}
    assert {e.track_id: e.disliked for e in store.all_engagements()} == disliked


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
