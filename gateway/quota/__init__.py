"""Quotas per tenant, model and unit: the policy, over counters in process or in Redis."""

from __future__ import annotations

from gateway.quota.counters import FallbackCounters, MemoryCounters, RedisCounters
from gateway.quota.policy import QuotaPolicy


async def open_policy(redis_url: str) -> QuotaPolicy:
    """The policy over Redis (falling back to in-process counters while it is down) when
    redis_url is set, else over in-process counters."""
    if not redis_url:
        return QuotaPolicy(MemoryCounters())
    return QuotaPolicy(FallbackCounters(RedisCounters(redis_url), MemoryCounters()))
