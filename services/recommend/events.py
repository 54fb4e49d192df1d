"""Behaviour events and what each one says about taste.

An event's `value` is its signed evidence of taste for the track: plays and likes
positive, skips and dislikes negative. Training and serving read the sum of values per
(user, track); the weights below are the documented defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventKind(enum.Enum):
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
        kind = self.kind
        if (kind is EventKind.PLAY and self.completion is not None
                and self.completion < SKIP_COMPLETION):
            kind = EventKind.SKIP
        return KIND_VALUES[kind] * self.count


@dataclass(frozen=True)
class Engagement:
    """A user's net evidence for one track, summed over their events."""

    user_id: str
    track_id: str
    value: float
    disliked: bool
    last_at_unix_s: float
