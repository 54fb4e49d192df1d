"""Quota counters: fixed windows counted in process, or in Redis for every replica.

When Redis is down the gateway fails open onto its own in-process counters: calls keep
being answered (availability over exactness), each replica then enforces the full limit
on its own, so N replicas may admit up to N times a quota until Redis is back. The
outage is logged once, counted (cadenza_gateway_quota_fallback_total) and shown
(cadenza_gateway_quota_backend_up); Redis is tried again every second. Timeouts are
short (250 ms) so a dead Redis never stalls a call for long. Failing closed would turn a
Redis outage into a platform outage, which no metered call is worth.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PREFIX = "cadenza:quota:"
FALLBACKS = Counter("cadenza_gateway_quota_fallback_total",
                    "Quota checks answered by in-process counters because Redis failed.")
BACKEND_UP = Gauge("cadenza_gateway_quota_backend_up",
                   "1 while the shared quota counters (Redis) answer; 0 during an outage.")

# Counts one call unless that would pass the limit: check and increment in one step, so
# replicas sharing Redis never admit more than the limit between them.
_TAKE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if n == 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


class Counters(Protocol):
    """Fixed-window counters (requests) and per-window sums (units)."""

    async def take(self, key: str, limit: int, window_s: int) -> float:
        """Counts a call if the window's count stays within limit: 0.0, else the seconds
        until the window ends (the refused call is not counted)."""

    async def used(self, key: str, window_s: int) -> float:
        """The window's sum so far."""

    async def add(self, key: str, amount: float, window_s: int) -> None:
        """Adds to the window's sum."""

    async def close(self) -> None:
        """Releases connections."""


def _window(window_s: int, now: float) -> tuple[int, float]:
    index = math.floor(now / window_s)
    return index, (index + 1) * window_s - now


class MemoryCounters:
    """Counters in this process (one replica's view)."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    def _key(self, key: str, window_s: int, now: float) -> str:
        index, _ = _window(window_s, now)
        if len(self._values) > 100_000:  # old windows: drop them all, now and then
            self._values = {k: v for k, v in self._values.items() if k.endswith(f":{index}")}
        return f"{key}:{window_s}:{index}"

    async def take(self, key: str, limit: int, window_s: int) -> float:
        """Counts a call within the limit, else the seconds until the window ends."""
        now = time.time()
        name = self._key(key, window_s, now)
        if self._values.get(name, 0.0) >= limit:
            return max(_window(window_s, now)[1], 0.001)
        self._values[name] = self._values.get(name, 0.0) + 1
        return 0.0

    async def used(self, key: str, window_s: int) -> float:
        """The window's sum so far."""
        return self._values.get(self._key(key, window_s, time.time()), 0.0)

    async def add(self, key: str, amount: float, window_s: int) -> None:
        """Adds to the window's sum."""
        name = self._key(key, window_s, time.time())
        self._values[name] = self._values.get(name, 0.0) + amount

    async def close(self) -> None:
        """Nothing to release."""


class RedisCounters:
    """Counters in Redis, shared by every gateway replica."""

    def __init__(self, url: str, timeout_s: float = 0.25, connections: int = 32) -> None:
        # A bounded pool that calls wait for: a burst of calls reuses a few warm
        # connections instead of opening one each (which, under load, is what outlasts
        # the timeout and sends a healthy Redis's callers to the fallback). A command that
        # takes longer than timeout_s, or a wait for a connection longer than 4x that,
        # counts as Redis down.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=connections, timeout=4 * timeout_s,
            socket_timeout=timeout_s, socket_connect_timeout=4 * timeout_s)
        self._redis = aioredis.Redis(connection_pool=pool)
        self._take = self._redis.register_script(_TAKE)

    async def take(self, key: str, limit: int, window_s: int) -> float:
        """Counts a call within the limit, else the seconds until the window ends."""
        index, left = _window(window_s, time.time())
        admitted = await self._take(keys=[f"{PREFIX}{key}:{window_s}:{index}"],
                                    args=[limit, window_s + 60])
        return 0.0 if int(admitted) else max(left, 0.001)

    async def used(self, key: str, window_s: int) -> float:
        """The window's sum so far."""
        index, _ = _window(window_s, time.time())
        value = await self._redis.get(f"{PREFIX}{key}:{window_s}:{index}")
        return float(value) if value is not None else 0.0

    async def add(self, key: str, amount: float, window_s: int) -> None:
        """Adds to the window's sum."""
        index, _ = _window(window_s, time.time())
        name = f"{PREFIX}{key}:{window_s}:{index}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(name, amount)
            pipe.expire(name, window_s + 3600)
            await pipe.execute()

    async def close(self) -> None:
        """Closes the connection pool."""
        await self._redis.aclose()


class FallbackCounters:
    """Redis while it answers; this process's counters while it does not."""

    def __init__(self, primary: Counters, fallback: Counters, retry_s: float = 1.0) -> None:
        self._primary, self._fallback = primary, fallback
        self._retry_s = retry_s
        self._down_until = 0.0
        BACKEND_UP.set(1)

    def _use_primary(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        if self._down_until == 0.0:
            logger.warning("quota counters: Redis failed (%s); counting in process until "
                           "it is back", error)
        self._down_until = time.monotonic() + self._retry_s
        BACKEND_UP.set(0)
        FALLBACKS.inc()

    def _recovered(self) -> None:
        if self._down_until:
            logger.warning("quota counters: Redis is back; quotas are shared again")
            self._down_until = 0.0
            BACKEND_UP.set(1)

    async def take(self, key: str, limit: int, window_s: int) -> float:
        """Counts a call within the limit, else the seconds until the window ends."""
        if self._use_primary():
            try:
                wait = await self._primary.take(key, limit, window_s)
                self._recovered()
                return wait
            except (RedisError, OSError) as error:
                self._failed(error)
        else:
            FALLBACKS.inc()
        return await self._fallback.take(key, limit, window_s)

    async def used(self, key: str, window_s: int) -> float:
        """The window's sum so far."""
        if self._use_primary():
            try:
                return await self._primary.used(key, window_s)
            except (RedisError, OSError) as error:
                self._failed(error)
        return await self._fallback.used(key, window_s)

    async def add(self, key: str, amount: float, window_s: int) -> None:
        """Adds to the window's sum (in process too, for the fallback's view)."""
        await self._fallback.add(key, amount, window_s)
        if self._use_primary():
            try:
                await self._primary.add(key, amount, window_s)
            except (RedisError, OSError) as error:
                self._failed(error)

    async def close(self) -> None:
        """Closes both."""
        await self._primary.close()
        await self._fallback.close()
