"""Lists computed ahead: after a publish or a catalogue change, and after a user's events.

A cached list is keyed by the model version, the catalogue revision and the user's
engagements, so three things leave a user's next call computed:
- a publish (hourly by default) or a catalogue change, for every user. The warmer then
  recomputes the default list (a request with nothing but the user id) of the users whose
  engagements the event log holds in memory: those who called lately and recorded nothing
  since, most recent first, as in Gorse's offline recommendations.
- the user's own new events. The event log tells the warmer whose events it committed;
  the default lists of those who asked for a list lately are computed again at once
  (after `SETTLE_S`, so a stream's chunks land first). Their next call, if it comes a few
  tens of ms later, is a cache hit that already counts the new like; one that comes
  sooner is computed as before, so the very next list always reflects the event.
One user at a time, between serving calls. A round after a publish takes at most `share`
of the process's time, so serving keeps the rest. Refreshes after events are not paced
while a few users wait (up to `BULK_USERS`): each computes the list the user's next call
would otherwise compute, one at a time, and paced ones fell behind the likes under load
(bench: at 16 in flight only 185 of 1,877 lists were ready before the call). More than
that waiting is a bulk import, paced like a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from services.recommend import metrics
from services.recommend.event_log import EventLog
from services.recommend.recommender import Recommender, RecommendQuery

logger = logging.getLogger(__name__)

# After a commit, the warmer waits this long before recomputing: the rest of a stream's
# chunks (500 events each) land meanwhile, so a user is recomputed once, not per chunk.
SETTLE_S = 0.02
# More users than this waiting for a refresh is a bulk import of events, not listeners
# liking tracks as they go: refreshes are then paced like a publish round.
BULK_USERS = 100


class ListWarmer:
    """Watches what cached lists depend on and warms the active users' default lists."""

    def __init__(self, recommender: Recommender, events: EventLog,
                 default_query: Callable[[str], RecommendQuery], max_users: int,
                 check_s: float, share: float = 0.5,
                 pause: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.recommender = recommender
        self.events = events
        self.default_query = default_query
        self.max_users = max_users
        self.check_s = check_s
        self.share = share  # of the process's time warming may take
        self._pause = pause
        self._warmed: tuple[str, str] | None = None
        self._touched: OrderedDict[str, None] = OrderedDict()  # to refresh, oldest first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def touched(self, users: set[str]) -> None:
        """The event log committed new events of these users: queues the default lists
        of those who asked for a list lately (EventLog.on_stored)."""
        for user in users:
            if self.recommender.asked_lately(user):
                self._touched[user] = None
                self._touched.move_to_end(user)
        while len(self._touched) > self.max_users:
            self._touched.popitem(last=False)
        if self._touched:
            self._wake.set()

    async def refresh(self) -> int:
        """Computes the default lists of the users queued by `touched`; how many."""
        done = 0
        while self._touched:
            paced = len(self._touched) > BULK_USERS
            user, _ = self._touched.popitem(last=False)
            if await self._compute(user, paced=paced):
                done += 1
                metrics.REFRESHED_LISTS.inc()
        return done

    async def warm(self) -> int:
        """Warms the lists if the model version or the catalogue revision moved since
        the last round; how many lists were computed."""
        state = self.recommender.list_state()
        if state is None or state == self._warmed or self.max_users <= 0:
            return 0
        started = time.perf_counter()
        users = (await self.events.recent_users())[:self.max_users]
        done = failed = 0
        for user in users:
            await self.refresh()  # a user's own new event goes before the round
            if self.recommender.list_state() != state:
                return done  # moved again: the next round starts over
            if await self._compute(user, paced=True):
                done += 1
                metrics.WARMED_LISTS.inc()
            else:
                failed += 1
        # Marked done even with failures: retrying a whole round every check_s for a
        # lasting fault would be a storm of recomputed lists.
        self._warmed = state
        # Quiet when there was nobody to warm (a catalogue import moves the revision
        # every refresh before anyone calls).
        logger.log(logging.INFO if users else logging.DEBUG,
                   "warmed %d default lists (%d failed) for model %s, catalogue %s in %.1f s",
                   done, failed, state[0] or "(none)", state[1], time.perf_counter() - started)
        return done

    async def _compute(self, user: str, paced: bool) -> bool:
        """Computes the user's default list into the cache; False when it failed.
        `paced`: then sleeps so that warming takes at most `share` of the process."""
        began = time.perf_counter()
        try:
            await self.recommender.recommend(self.default_query(user), ahead=True)
            ok = True
        except Exception:  # that user's call computes it; warming goes on
            logger.warning("warming the default list of %r failed", user, exc_info=True)
            ok = False
        if paced:
            # Serving calls go between users, and a round takes at most `share` of the
            # process: a catalogue that changes every few seconds (a bulk import) would
            # otherwise keep it busy recomputing lists that go stale at once.
            spent = time.perf_counter() - began
            await self._pause(spent * (1.0 / self.share - 1.0))
        return ok

    async def start(self) -> None:
        """Starts watching (a warm round at once, then every check_s or when touched)."""
        if self.max_users > 0:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stops watching; a round in progress ends between two users."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
                await self.warm()
            except Exception:  # a failed round must not stop the next ones
                logger.exception("warming the default lists failed; retrying in %.0f s",
                                 self.check_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_s)
            self._wake.clear()
            await asyncio.sleep(SETTLE_S)
