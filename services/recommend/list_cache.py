"""Lists already computed, served again while nothing they depend on has changed.

A list depends on the request, the user's engagements, the serving model version and the
catalogue (the content copy's revision). The key holds all four (the request without its
limit: a list serves every smaller limit as its prefix), so a cached list is the list a
fresh computation would give: a new like changes the user's engagements (read
from the event store on every call) and so the key, and the very next list is computed
afresh; a publish or a catalogue change moves the version or the revision. Without a
catalogue copy (content_in_memory off, or not copied yet) nothing is cached, because the
catalogue's changes would go unseen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from services.recommend import metrics
from services.recommend.events import Engagement

T = TypeVar("T")


def history_key(history: list[Engagement]) -> Hashable:
    """What of the user's engagements a list depends on."""
    return tuple((e.track_id, e.value, e.disliked) for e in history)


class ListCache(Generic[T]):
    """The most recently used `size` lists (0: none kept)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lists: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, usable: Callable[[T], bool] = lambda _: True,
            count: bool = True) -> T | None:
        """The list kept under `key` if it is `usable` for the caller, or None; `count`:
        a caller's lookup (the hit-ratio metric), not one for warming."""
        found = self._lists.get(key)
        if found is not None and not usable(found):
            found = None
        if count:
            metrics.LIST_CACHE.labels("hit" if found is not None else "miss").inc()
        if found is not None:
            self._lists.move_to_end(key)
        return found

    def put(self, key: Hashable, value: T) -> None:
        """Keeps the list, dropping the least recently used beyond `size`."""
        if self.size <= 0:
            return
        self._lists[key] = value
        self._lists.move_to_end(key)
        while len(self._lists) > self.size:
            self._lists.popitem(last=False)
