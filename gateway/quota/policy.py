"""Quotas as AI APIs price them: requests per minute, and the model's unit per UTC day,
per tenant and model (the tenant's "*" quota when it has none for the model)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway.quota.counters import Counters
from gateway.store import Quota, Tenant

_MINUTE, _DAY = 60, 86400


@dataclass(frozen=True)
class Refusal:
    """Which quota a call is over, and when to retry."""
    subject: str
    description: str
    retry_after_s: float
    message: str


def quota_for(tenant: Tenant, model: str) -> Quota | None:
    """The tenant's quota for the model, else its "*" quota, else None (no limit)."""
    default = None
    for quota in tenant.quotas:
        if quota.model == model:
            return quota
        if quota.model == "*":
            default = quota
    return default


class QuotaPolicy:
    """Admits calls within their tenant's quotas and charges what they used."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    async def admit(self, tenant: Tenant, model: str, unit: str) -> Refusal | None:
        """None if the call may go ahead, else the quota it is over."""
        quota = quota_for(tenant, model)
        if quota is None:
            return None
        if quota.requests_per_minute > 0:
            wait = await self._counters.take(f"rpm:{tenant.name}:{model}",
                                             quota.requests_per_minute, _MINUTE)
            if wait > 0:
                return _refusal(tenant.name, model, "requests_per_minute",
                                f"{quota.requests_per_minute} requests per minute", wait)
        if quota.units_per_day > 0:
            limit = quota.units_per_day
            if unit == "requests":
                wait = await self._counters.take(f"rpd:{tenant.name}:{model}",
                                                 int(limit), _DAY)
            else:
                used = await self._counters.used(f"upd:{tenant.name}:{model}", _DAY)
                wait = _DAY - (_now() % _DAY) if used >= limit else 0.0
            if wait > 0:
                return _refusal(tenant.name, model, "units_per_day",
                                f"{limit:g} {unit} per day", wait)
        return None

    async def charge(self, tenant_name: str, model: str, units: float) -> None:
        """Counts units a finished call used toward the day's quota."""
        await self._counters.add(f"upd:{tenant_name}:{model}", units, _DAY)

    async def usage_today(self, tenant_name: str, model: str) -> float:
        """Units the tenant has used of the model today (UTC), as the quota counts them."""
        return await self._counters.used(f"upd:{tenant_name}:{model}", _DAY)

    async def close(self) -> None:
        """Releases the counters."""
        await self._counters.close()


def _now() -> float:
    return time.time()


def _refusal(tenant: str, model: str, kind: str, description: str, wait_s: float) -> Refusal:
    which = f"model '{model}'" if model and model != "*" else "every model"
    return Refusal(
        subject=f"tenant:{tenant}/model:{model or '*'}/{kind}", description=description,
        retry_after_s=wait_s,
        message=(f"quota exceeded for tenant '{tenant}' on {which}: {description}; "
                 f"retry in {math.ceil(wait_s)} s"))


def refusal_status(refusal: Refusal) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED with a QuotaFailure (which quota) and a RetryInfo (when)."""
    failure, retry = any_pb2.Any(), any_pb2.Any()
    failure.Pack(error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(subject=refusal.subject,
                                                 description=refusal.description)]))
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(refusal.retry_after_s * 1e9))
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=refusal.message,
                             details=[failure, retry])
