"""Who is calling (API keys from the store), whether the key may call this method (scopes),
whether the tenant is within its quotas, and the usage record that meters the call.

One `Access` serves both ways in: the gateway's own interceptor (calls to its port) and
the ext_authz service Envoy asks at the edge, so both draw on the same quotas and write
the same usage records.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import grpc.aio
from google.rpc import status_pb2

from cadenza.kit.errors import CadenzaError
from cadenza.kit.interceptor import Context, Handler
from gateway import keys
from gateway.caller import ANONYMOUS, Caller, caller
from gateway.catalog import meter_of
from gateway.metering import Metering, new_call_id
from gateway.quota.policy import QuotaPolicy, refusal_status
from gateway.store import ApiKey, Store, Tenant, UsageRecord
from gateway.usage import REJECTED

# Probes and tooling must work without a key, and so must Envoy's calls to the control
# plane (ext_authz, access logs): the gateway's port is inside the mesh, never public.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.", "/envoy.service.")
UNAUTHENTICATED_MESSAGE = "send a valid API key as 'authorization: Bearer <key>'"
CALL_ID_HEADER = "x-cadenza-call-id"
# Quotas are read from the store at most this often per tenant: a change to a tenant's
# quotas applies within this time. Keys are looked up on every call, so a revoked key
# stops at once on every replica.
_TENANT_TTL_S = 2.0


@dataclass(frozen=True)
class Decision:
    """Whether a call may go ahead: its caller and usage record, or the refusal."""
    caller: Caller
    record: UsageRecord | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    status: status_pb2.Status | None = None
    retry_after_s: float = 0.0


def _refuse(code: grpc.StatusCode, message: str, who: str = "unknown") -> Decision:
    REJECTED.labels(who, code.name).inc()
    return Decision(ANONYMOUS, code=code, message=message)


class Access:
    """Keys, scopes, quotas and usage reservations, over the gateway's store."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        # Attached once the gateway has opened its store (inside the event loop); the
        # interceptor exists before that, because the server is built with it.
        self._store: Store | None = None
        self._policy: QuotaPolicy | None = None
        self._metering: Metering | None = None
        self.required = False
        self._clock = clock
        self._tenants: dict[str, tuple[float, Tenant | None]] = {}

    def attach(self, store: Store, policy: QuotaPolicy, metering: Metering,
               required: bool) -> None:
        """Uses the store's keys, the quota policy and metering from now on."""
        self._store, self._policy, self._metering = store, policy, metering
        self.required = required

    async def decide(self, authorization: str, method: str) -> Decision:
        """Authenticates the header value, checks the method's scope and the tenant's
        quota, and reserves the call's usage record (metered methods only)."""
        if not self.required:
            # An open mesh: no tenants, no quotas; calls are metered when they end.
            return Decision(ANONYMOUS)
        meter = meter_of(method)
        scope = keys.scope_for(method)
        found = await self._authenticate(authorization, scope, method)
        if isinstance(found, Decision):
            return found
        who, tenant = found
        if not scope or scope == "admin" or self._metering is None:
            return Decision(who)
        if self._policy is not None and tenant is not None:
            refusal = await self._policy.admit(tenant, meter.model, meter.unit)
            if refusal is not None:
                REJECTED.labels(who.tenant, "RESOURCE_EXHAUSTED").inc()
                return Decision(who, code=grpc.StatusCode.RESOURCE_EXHAUSTED,
                                message=refusal.message, status=refusal_status(refusal),
                                retry_after_s=refusal.retry_after_s)
        record = self._metering.record(who, new_call_id(), method, meter.model, meter.unit)
        try:
            await self._metering.reserve(record)
        except CadenzaError as error:
            return Decision(who, code=error.code, message=error.message)
        return Decision(who, record)

    async def _authenticate(self, authorization: str, scope: str,
                            method: str) -> Decision | tuple[Caller, Tenant | None]:
        assert self._store is not None
        if not authorization.startswith("Bearer "):
            return _refuse(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        secret = authorization[len("Bearer "):].strip()
        if not keys.well_formed(secret):
            return _refuse(grpc.StatusCode.UNAUTHENTICATED,
                           f"malformed API key: a key is '{keys.PREFIX}' and 43 characters "
                           f"(create one with `cadenza keys create`); {UNAUTHENTICATED_MESSAGE}")
        now = self._clock()
        try:
            key = await self._store.find_key(keys.hash_secret(secret), now)
        except CadenzaError as error:
            return _refuse(error.code, error.message)
        refusal = _inactive(key, now)
        if refusal is not None:
            return refusal
        assert key is not None
        who = Caller(key.tenant, key.id, key.scopes)
        if scope and scope not in key.scopes:
            return _refuse(grpc.StatusCode.PERMISSION_DENIED,
                           f"API key {key.id} lacks the '{scope}' scope that {method} needs; "
                           f"its scopes: {sorted(key.scopes)}", key.tenant)
        try:
            tenant = await self._tenant(key.tenant)
        except CadenzaError as error:
            return _refuse(error.code, error.message, key.tenant)
        return who, tenant

    async def _tenant(self, name: str) -> Tenant | None:
        assert self._store is not None
        cached = self._tenants.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _TENANT_TTL_S:
            return cached[1]
        tenant = await self._store.get_tenant(name)
        self._tenants[name] = (now, tenant)
        return tenant

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The access interceptor (always: it meters calls even when keys are off)."""
        return [AccessInterceptor(self)]


def _inactive(key: ApiKey | None, now: datetime) -> Decision | None:
    """The refusal for an unknown, revoked or expired key (one message for unknown keys,
    whoever's they might have been)."""
    if key is None:
        return _refuse(grpc.StatusCode.UNAUTHENTICATED,
                       f"unknown API key; {UNAUTHENTICATED_MESSAGE}")
    if key.revoke_time is not None:
        return _refuse(grpc.StatusCode.UNAUTHENTICATED,
                       f"API key {key.id} was revoked at {key.revoke_time.isoformat()}; "
                       "ask your admin for a new key", key.tenant)
    if key.expire_time is not None and key.expire_time <= now:
        return _refuse(grpc.StatusCode.UNAUTHENTICATED,
                       f"API key {key.id} expired at {key.expire_time.isoformat()}; "
                       "ask your admin for a new key", key.tenant)
    return None


def _rejection(decision: Decision) -> Handler:
    async def reject(request: object, ctx: Context) -> None:
        trailers = () if decision.status is None else (
            ("grpc-status-details-bin", decision.status.SerializeToString()),)
        await ctx.abort(decision.code, decision.message, trailers)

    return grpc.unary_unary_rpc_method_handler(reject)


# The admitted call's usage record, for the forwarder to settle when the call ends.
reservation: contextvars.ContextVar[UsageRecord | None] = contextvars.ContextVar(
    "reservation", default=None)


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Applies `Access` to every call on the gateway's own port."""

    def __init__(self, access: Access) -> None:
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Admits the call (setting its caller and usage record), or rejects it."""
        if details.method.startswith(OPEN_PREFIXES):
            return await continuation(details)
        authorization = ""
        for meta_key, value in details.invocation_metadata or ():
            if meta_key == "authorization":
                authorization = str(value)
        decision = await self._access.decide(authorization, details.method)
        if decision.code != grpc.StatusCode.OK:
            return _rejection(decision)
        caller.set(decision.caller)
        reservation.set(decision.record)
        return await continuation(details)
