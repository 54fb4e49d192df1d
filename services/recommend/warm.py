"""Lists computed ahead: after a publish or a catalogue change, for the active users.

A cached list is keyed by the model version and the catalogue revision, so every publish
(hourly by default) and every catalogue change leaves the cache cold: each user's next
call would be computed. The warmer recomputes, one user at a time between serving calls,
the default list (a request with nothing but the user id) of the users whose engagements
the event log holds in memory: those who called lately and recorded nothing since, most
recent first. Their next default call is then a cache hit, as in Gorse's offline
recommendations; a user who records an event still gets a list computed afresh. A round
takes at most half the process's time (`share`), so serving keeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from services.recommend import metrics
from services.recommend.event_log import EventLog
from services.recommend.recommender import Recommender, RecommendQuery

logger = logging.getLogger(__name__)


class ListWarmer:
    """Watches what cached lists depend on and warms the active users' default lists."""

    def __init__(self, recommender: Recommender, events: EventLog,
                 default_query: Callable[[str], RecommendQuery], max_users: int,
                 check_s: float, share: float = 0.5) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.recommender = recommender
        self.events = events
        self.default_query = default_query
        self.max_users = max_users
        self.check_s = check_s
        self.share = share  # of the process's time a warm round may take
        self._warmed: tuple[str, str] | None = None
        self._task: asyncio.Task[None] | None = None

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
            if self.recommender.list_state() != state:
                return done  # moved again: the next round starts over
            began = time.perf_counter()
            try:
                await self.recommender.recommend(self.default_query(user), ahead=True)
            except Exception:  # that user's call computes it; the round goes on
                failed += 1
                logger.warning("warming the default list of %r failed", user, exc_info=True)
            else:
                done += 1
                metrics.WARMED_LISTS.inc()
            # Serving calls go between users, and warming takes at most `share` of the
            # process: a catalogue that changes every few seconds (a bulk import) would
            # otherwise keep it busy recomputing lists that go stale at once.
            spent = time.perf_counter() - began
            await asyncio.sleep(spent * (1.0 / self.share - 1.0))
        # Marked done even with failures: retrying a whole round every check_s for a
        # lasting fault would be a storm of recomputed lists.
        self._warmed = state
        # Quiet when there was nobody to warm (a catalogue import moves the revision
        # every refresh before anyone calls).
        logger.log(logging.INFO if users else logging.DEBUG,
                   "warmed %d default lists (%d failed) for model %s, catalogue %s in %.1f s",
                   done, failed, state[0] or "(none)", state[1], time.perf_counter() - started)
        return done

    async def start(self) -> None:
        """Starts watching (a warm round at once, then every check_s)."""
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
                await self.warm()
            except Exception:  # a failed round must not stop the next ones
                logger.exception("warming the default lists failed; retrying in %.0f s",
                                 self.check_s)
            await asyncio.sleep(self.check_s)
