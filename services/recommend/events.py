"""Behaviour events, what each one says about taste, and the port they are stored behind.

An event's `value` is its signed evidence of taste for the track: plays and likes
positive, skips and dislikes negative. Training and serving read the sum of values per
(user, track); the weights below are the documented defaults. Which `EventStore` keeps
them is chosen at start-up (`app.py`): SQLite on disk in production.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class EventKind(enum.Enum):
    """What the listener did."""

    PLAY = "play"
    LIKE = "like"
    DISLIKE = "dislike"
    SKIP = "skip"
    PLAYLIST_ADD = "playlist_add"


# Evidence per occurrence. A like is worth several plays; a dislike outweighs a handful
# of plays (and also hides the track from the listener's lists for good).
KIND_VALUES = {
    EventKind.PLAY: 1.0,
    EventKind.LIKE: 4.0,
    EventKind.PLAYLIST_ADD: 3.0,
    EventKind.SKIP: -1.0,
    EventKind.DISLIKE: -8.0,
}
# A play that stopped before this fraction of the track counts as a skip.
SKIP_COMPLETION = 0.25


@dataclass(frozen=True)
class Event:
    """One behaviour event as recorded; `event_id` makes a client's retry land once."""

    event_id: str
    user_id: str
    track_id: str
    kind: EventKind
    occurred_at_unix_s: float
    listened_ms: int = 0
    completion: float | None = None
    playlist_id: str = ""
    count: int = 1

    @property
    def value(self) -> float:
        """Signed evidence of taste: the kind's weight times count (a short play skips)."""
        kind = self.kind
        if (kind is EventKind.PLAY and self.completion is not None
                and self.completion < SKIP_COMPLETION):
            kind = EventKind.SKIP
        return KIND_VALUES[kind] * self.count


@dataclass(frozen=True)
class Engagement:
    """A user's net evidence for one track, summed over their events.

    `disliked`: the latest like or dislike of the track is a dislike (ties in time go to
    the one stored last); `last_at_unix_s`: the latest event's time.
    """

    user_id: str
    track_id: str
    value: float
    disliked: bool
    last_at_unix_s: float


class EventStore(Protocol):
    """Durable, idempotent storage of events.

    Rows are never updated or deleted, so `last_sequence` only grows: training asks
    "anything new since sequence N?". `add`, `count`, `last_sequence`, `engagements` and
    `close` are called from one store thread (they are safe from others too); training
    calls `all_engagements` from its own thread while writes go on.
    """

    def add(self, events: list[Event]) -> list[bool]:
        """Stores the events all together or none of them; per event, True when newly
        stored and False when its event_id was already there (or earlier in the list)."""

    def count(self) -> int:
        """How many events are stored."""

    def last_sequence(self) -> int:
        """The sequence of the newest event; 0 when the store is empty."""

    def engagements(self, user_id: str) -> list[Engagement]:
        """The user's net evidence per track they have events for (see `Engagement`)."""

    def all_engagements(self) -> list[Engagement]:
        """Every user's engagements, as one consistent snapshot."""

    def close(self) -> None:
        """Releases the store; no call may follow."""
