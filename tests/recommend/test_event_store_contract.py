"""One contract for the EventStore port, run against every implementation.

SQLite on disk (what the service runs) and memory; reopening is checked where the
implementation is durable.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Iterator

import pytest

from services.recommend.event_store import SqliteEventStore
from services.recommend.events import Engagement, Event, EventKind, EventStore
from services.recommend.memory_event_store import MemoryEventStore

T0 = 1_700_000_000.0

# name -> opener of a store at a path (the same path reopens the same store), durable?
IMPLEMENTATIONS: dict[str, tuple[Callable[[pathlib.Path], EventStore], bool]] = {
    "sqlite": (lambda path: SqliteEventStore.open(path), True),
    "memory": (lambda path: MemoryEventStore(), False),
}


def event(event_id: str, kind: EventKind = EventKind.PLAY, *, user: str = "u1",
          track: str = "t1", at: float = T0, **fields: object) -> Event:
    return Event(event_id, user, track, kind, at, **fields)  # type: ignore[arg-type]


@pytest.fixture(params=list(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(implementation: str, tmp_path: pathlib.Path) -> Iterator[EventStore]:
    opened = IMPLEMENTATIONS[implementation][0](tmp_path / "nested" / "events.sqlite3")
    yield opened
    opened.close()


def by_track(engagements: list[Engagement]) -> dict[tuple[str, str], Engagement]:
    return {(e.user_id, e.track_id): e for e in engagements}


def test_duplicates_are_reported_and_stored_once(store: EventStore) -> None:
    assert store.add([event("a"), event("b")]) == [True, True]
    assert store.add([event("b"), event("c"), event("c")]) == [False, True, False]
    assert store.count() == 3
    assert store.last_sequence() == 3


def test_an_empty_store_has_sequence_zero(store: EventStore) -> None:
    assert store.count() == 0 and store.last_sequence() == 0
    assert store.engagements("nobody") == [] and store.all_engagements() == []


def test_an_empty_batch_stores_nothing(store: EventStore) -> None:
    assert store.add([]) == []
    assert store.count() == 0 and store.last_sequence() == 0


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


def test_the_last_time_is_the_latest_event_not_the_last_stored(store: EventStore) -> None:
    store.add([event("late", at=T0 + 50), event("early", at=T0)])
    [only] = store.engagements("u1")
    assert only == Engagement("u1", "t1", 2.0, False, T0 + 50)


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


def test_a_later_batch_can_overturn_an_opinion(store: EventStore) -> None:
    store.add([event("d", EventKind.DISLIKE, at=T0)])
    assert store.engagements("u1")[0].disliked
    store.add([event("l", EventKind.LIKE, at=T0)])  # same instant, stored later: it wins
    [after] = store.engagements("u1")
    assert not after.disliked and after.value == pytest.approx(-8.0 + 4.0)


def test_engagements_are_per_user(store: EventStore) -> None:
    store.add([event("a", user="u1"), event("b", user="u2", count=5),
               event("c", EventKind.DISLIKE, user="u2", track="t2")])
    assert by_track(store.engagements("u2")) == {
        ("u2", "t1"): Engagement("u2", "t1", 5.0, False, T0),
        ("u2", "t2"): Engagement("u2", "t2", -8.0, True, T0)}
    assert by_track(store.all_engagements()) == {
        **by_track(store.engagements("u1")), **by_track(store.engagements("u2"))}


def test_a_batch_with_a_bad_event_stores_none_of_it(store: EventStore) -> None:
    store.add([event("before")])
    bad = event("bad", "play")  # type: ignore[arg-type]  # a string, not an EventKind
    with pytest.raises(AttributeError):
        store.add([event("a"), bad, event("b")])
    assert store.count() == 1 and store.last_sequence() == 1
    assert store.add([event("a"), event("b")]) == [True, True]  # not half-stored before
    assert store.count() == 3 and store.last_sequence() == 3


def test_the_sequence_only_grows(store: EventStore) -> None:
    seen = [store.last_sequence()]
    for i in range(5):
        store.add([event(f"e{i}"), event("e0")])
        seen.append(store.last_sequence())
    assert seen == [0, 1, 2, 3, 4, 5]


def test_writes_from_several_threads_all_land_once(store: EventStore) -> None:
    def write(worker: int) -> None:
        for i in range(20):
            store.add([event(f"w{worker}-{i}"), event(f"shared-{i}")])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert store.count() == 4 * 20 + 20 and store.last_sequence() == 100
    [total] = store.engagements("u1")
    assert total.value == pytest.approx(100.0)


@pytest.mark.parametrize("durable", [name for name, (_, durable) in IMPLEMENTATIONS.items()
                                     if durable])
def test_a_durable_store_keeps_its_events_after_reopening(durable: str,
                                                          tmp_path: pathlib.Path) -> None:
    opener = IMPLEMENTATIONS[durable][0]
    path = tmp_path / "events.sqlite3"
    first = opener(path)
    first.add([event("a", completion=0.5, listened_ms=90_000, playlist_id="p1"),
               event("b", EventKind.DISLIKE, track="t2", at=T0 + 1)])
    before = by_track(first.all_engagements())
    first.close()
    again = opener(path)
    try:
        assert again.count() == 2 and again.last_sequence() == 2
        assert by_track(again.all_engagements()) == before
        assert again.add([event("a"), event("c")]) == [False, True]
        assert again.last_sequence() == 3
    finally:
        again.close()
