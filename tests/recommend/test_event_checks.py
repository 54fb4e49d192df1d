"""Event checks and proto conversion: each bad field is named with what to fix."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cadenza.kit.errors import InvalidArgument
from cadenza.recommend.v1 import recommend_pb2 as pb
from services.recommend.event_convert import event_from_pb
from services.recommend.event_log import MAX_COUNT, check_event
from services.recommend.events import Event, EventKind

NOW = 1_750_000_000.0
GOOD = Event("e1", "u1", "t1", EventKind.PLAY, NOW - 60, listened_ms=1000, completion=0.5)


def problem(event: Event, skew_s: float = 300.0) -> str:
    with pytest.raises(InvalidArgument) as caught:
        check_event("event", event, NOW, skew_s)
    return caught.value.message


def test_a_good_event_passes() -> None:
    check_event("event", GOOD, NOW, 300.0)
    check_event("event", dataclasses.replace(GOOD, occurred_at_unix_s=NOW + 299), NOW, 300.0)


@pytest.mark.parametrize(("change", "fragments"), [
    ({"event_id": ""}, ("event.event_id", "required")),
    ({"user_id": "has space"}, ("event.user_id", "not a valid id")),
    ({"track_id": "x" * 129}, ("event.track_id",)),
    ({"occurred_at_unix_s": NOW + 301}, ("event.occurred_at", "in the future", "skew")),
    ({"occurred_at_unix_s": 0.0}, ("event.occurred_at", "before 2000-01-01")),
    ({"occurred_at_unix_s": NOW * 1000}, ("event.occurred_at", "in the future")),
    ({"listened_ms": -1}, ("event.listened_ms", "0-86400000")),
    ({"listened_ms": 86_400_001}, ("event.listened_ms", "a day")),
    ({"completion": 1.5}, ("event.completion", "[0, 1]")),
    ({"completion": float("nan")}, ("event.completion",)),
    ({"count": -2}, ("event.count", "between 1 and")),
    ({"count": MAX_COUNT + 1}, ("event.count", str(MAX_COUNT))),
    ({"playlist_id": "no/slashes"}, ("event.playlist_id",)),
])
def test_each_bad_field_is_named(change: dict[str, object], fragments: tuple[str, ...]) -> None:
    message = problem(dataclasses.replace(GOOD, **change))  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in message, message


def test_conversion_fills_defaults() -> None:
    event = event_from_pb(pb.Event(event_id="e", user_id="u", track_id="t",
                                   kind=pb.EVENT_KIND_LIKE), received_at_unix_s=NOW)
    assert event == Event("e", "u", "t", EventKind.LIKE, NOW, 0, None, "", 1)
    stamped = event_from_pb(pb.Event(kind=pb.EVENT_KIND_PLAY, completion=0.0, count=4,
                                     occurred_at=Timestamp(seconds=1_700_000_000,
                                                           nanos=500_000_000)))
    assert stamped.occurred_at_unix_s == 1_700_000_000.5
    assert stamped.completion == 0.0 and stamped.count == 4


@pytest.mark.parametrize(("message", "fragments"), [
    (pb.Event(kind=99), ("event.kind", "unknown value 99", "EVENT_KIND_PLAYLIST_ADD")),
    (pb.Event(), ("event.kind", "is required", "EVENT_KIND_PLAY")),
    (pb.Event(kind=pb.EVENT_KIND_PLAY, occurred_at=Timestamp(seconds=1, nanos=-5)),
     ("event.occurred_at", "nanos")),
    (pb.Event(kind=pb.EVENT_KIND_PLAY, occurred_at=Timestamp(seconds=10**13)),
     ("event.occurred_at", "years 1-9999")),
])
def test_malformed_messages_are_invalid(message: pb.Event, fragments: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        event_from_pb(message)
    for fragment in fragments:
        assert fragment in caught.value.message, caught.value.message
