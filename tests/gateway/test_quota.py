"""Quota counters and the policy over them: one contract on in-process and Redis
counters, exact limits across replicas sharing Redis, and Redis failing mid-traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY

from gateway.quota import open_policy
from gateway.quota.counters import Counters, MemoryCounters, RedisCounters
from gateway.quota.policy import QuotaPolicy, refusal_status
from gateway.store import Quota, Tenant
from tests.support.redis import Redis


def tenant(*quotas: Quota) -> Tenant:
    return Tenant("acme", "Acme", datetime.now(UTC), quotas)


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    made: Counters = (MemoryCounters() if request.param == "memory"
                      else RedisCounters(request.getfixturevalue("redis_url")))
    yield made
    await made.close()


async def test_take_admits_the_limit_then_says_when_the_window_ends(counters: Counters) -> None:
    waits = [await counters.take("k", 3, 60) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(0 < w <= 60 for w in waits[3:])
    assert await counters.take("other", 1, 60) == 0.0


async def test_units_add_up_in_the_window(counters: Counters) -> None:
    assert await counters.used("u", 86400) == 0.0
    await counters.add("u", 2.5, 86400)
    await counters.add("u", 1.0, 86400)
    assert await counters.used("u", 86400) == 3.5


async def test_two_replicas_on_one_redis_admit_exactly_the_limit(redis_url: str) -> None:
    # Production timeouts: 150 calls at once share the bounded pool's connections (an
    # error here would raise, so exactness is checked with nothing falling back).
    one, two = RedisCounters(redis_url), RedisCounters(redis_url)
    limit = 50
    if 60 - time.time() % 60 < 5:
        await asyncio.sleep(6)  # keep every take in one minute window
    waits = await asyncio.gather(*((one if i % 2 else two).take("rpm:acme:m", limit, 60)
                                   for i in range(3 * limit)))
    assert sum(w == 0.0 for w in waits) == limit
    await one.close()
    await two.close()


async def test_policy_requests_per_minute_units_per_day_and_overrides() -> None:
    policy = QuotaPolicy(MemoryCounters())
    acme = tenant(Quota("*", requests_per_minute=2), Quota("poly", units_per_day=10.0))
    assert await policy.admit(acme, "other", "requests") is None
    assert await policy.admit(acme, "other", "requests") is None
    refused = await policy.admit(acme, "other", "requests")
    assert refused is not None and "2 requests per minute" in refused.message
    # The model's own quota replaces "*": no per-minute limit, 10 units a day.
    for _ in range(5):
        assert await policy.admit(acme, "poly", "seconds") is None
    await policy.charge("acme", "poly", 12.0)  # the last admitted call crossed it
    over = await policy.admit(acme, "poly", "seconds")
    assert over is not None and over.subject == "tenant:acme/model:poly/units_per_day"
    assert await policy.usage_today("acme", "poly") == 12.0
    assert await policy.admit(tenant(), "poly", "seconds") is None  # no quota: no limit


async def test_refusal_status_carries_quota_failure_and_retry_info() -> None:
    policy = QuotaPolicy(MemoryCounters())
    acme = tenant(Quota("*", requests_per_minute=1))
    await policy.admit(acme, "m", "requests")
    refusal = await policy.admit(acme, "m", "requests")
    assert refusal is not None
    status = refusal_status(refusal)
    failure, retry = error_details_pb2.QuotaFailure(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(failure) and status.details[1].Unpack(retry)
    assert failure.violations[0].description == "1 requests per minute"
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 60


def fallbacks() -> float:
    return REGISTRY.get_sample_value("cadenza_gateway_quota_fallback_total") or 0.0


async def test_redis_stopping_mid_traffic_falls_back_then_shares_again(
        redis_server: Redis) -> None:
    policy = await open_policy(redis_server.url)
    acme = tenant(Quota("*", requests_per_minute=1000))
    for _ in range(3):
        assert await policy.admit(acme, "m", "requests") is None
    before = fallbacks()
    redis_server.stop()
    started = time.monotonic()
    for _ in range(5):
        assert await policy.admit(acme, "m", "requests") is None  # answered, in process
    assert time.monotonic() - started < 5  # short timeouts: no call hangs on a dead Redis
    assert fallbacks() >= before + 5
    assert REGISTRY.get_sample_value("cadenza_gateway_quota_backend_up") == 0
    redis_server.start()
    await asyncio.sleep(1.1)  # the retry interval
    assert await policy.admit(acme, "m", "requests") is None
    assert REGISTRY.get_sample_value("cadenza_gateway_quota_backend_up") == 1
    shared = RedisCounters(redis_server.url)
    # The call after the restart was counted in Redis again.
    assert await shared.take("rpm:acme:m", 1, 60) > 0
    await shared.close()
    await policy.close()


