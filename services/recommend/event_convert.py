"""Events between protobuf and the domain: timestamps, kinds, defaults, batch results."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp

from cadenza.kit.errors import InvalidArgument
from cadenza.recommend.v1 import recommend_pb2 as pb
from services.recommend.event_log import BatchResult, Malformed
from services.recommend.events import Event, EventKind

_KINDS: dict[int, EventKind] = {
    pb.EVENT_KIND_PLAY: EventKind.PLAY,
    pb.EVENT_KIND_LIKE: EventKind.LIKE,
    pb.EVENT_KIND_DISLIKE: EventKind.DISLIKE,
    pb.EVENT_KIND_SKIP: EventKind.SKIP,
    pb.EVENT_KIND_PLAYLIST_ADD: EventKind.PLAYLIST_ADD,
}
_KIND_NAMES = ", ".join(pb.EventKind.Name(pb.EventKind.ValueType(number)) for number in _KINDS)
# google.protobuf.Timestamp's documented range: 0001-01-01 to 9999-12-31 (UTC).
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def timestamp_from_pb(field: str, stamp: Timestamp) -> float:
    """Unix seconds from a Timestamp that keeps to the type's rules."""
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument(field, f"nanos must be within 0..999999999, got {stamp.nanos} "
                                     "(negative fractions borrow from seconds)")
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS:
        raise InvalidArgument(field, f"seconds {stamp.seconds} is outside years 1-9999")
    return stamp.seconds + stamp.nanos / 1e9


def kind_from_pb(field: str, number: int) -> EventKind:
    """The domain kind of a proto EventKind; InvalidArgument for unset or unknown ones."""
    kind = _KINDS.get(number)
    if kind is None:
        problem = "is required" if number == pb.EVENT_KIND_UNSPECIFIED else (
            f"unknown value {number}")
        raise InvalidArgument(field, f"{problem}; use one of {_KIND_NAMES}")
    return kind


def event_from_pb(message: pb.Event, received_at_unix_s: float | None = None,
                  field: str = "event") -> Event:
    """The domain event; an unset occurred_at means when the server received it."""
    if message.HasField("occurred_at"):
        occurred_at = timestamp_from_pb(f"{field}.occurred_at", message.occurred_at)
    else:
        occurred_at = time.time() if received_at_unix_s is None else received_at_unix_s
    return Event(
        event_id=message.event_id,
        user_id=message.user_id,
        track_id=message.track_id,
        kind=kind_from_pb(f"{field}.kind", message.kind),
        occurred_at_unix_s=occurred_at,
        listened_ms=message.listened_ms,
        completion=message.completion if message.HasField("completion") else None,
        playlist_id=message.playlist_id,
        count=message.count or 1,
    )


async def events_from_pb(requests: AsyncIterator[pb.RecordEventsRequest]
                         ) -> AsyncIterator[Event | Malformed]:
    """A RecordEvents stream as domain events; unreadable ones become Malformed items, so
    that they are rejected one by one rather than failing the whole batch."""
    async for request in requests:
        try:
            yield event_from_pb(request.event)
        except InvalidArgument as error:
            yield Malformed(request.event.event_id, error.message)


def batch_result_to_pb(result: BatchResult) -> pb.RecordEventsResponse:
    """A batch's outcome as a RecordEventsResponse."""
    return pb.RecordEventsResponse(
        stored=result.stored, duplicates=result.duplicates,
        rejected=[pb.RejectedEvent(index=r.index, event_id=r.event_id, reason=r.reason)
                  for r in result.rejected])
