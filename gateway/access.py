"""Who is calling (API keys) and whether they may call now (per-key rate quota)."""

from __future__ import annotations

import contextvars
import hmac
import pathlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cadenza.kit.interceptor import Context, Handler
from gateway.settings import GatewaySettings
from gateway.usage import REJECTED

ANONYMOUS = "anonymous"
principal: contextvars.ContextVar[str] = contextvars.ContextVar("principal", default=ANONYMOUS)

# Probes and tooling must work without a key, and so must Envoy's calls to the control
# plane (ext_authz, access logs): the gateway's port is inside the mesh, never public.
_OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.", "/envoy.service.")
UNAUTHENTICATED_MESSAGE = "send a valid API key as 'authorization: Bearer <key>'"


def load_keys(settings: GatewaySettings) -> dict[str, str]:
    """API key -> principal name, from the settings string and the optional key file."""
    entries = [e for e in settings.api_keys.split(",") if e.strip()]
    if settings.api_keys_file:
        lines = pathlib.Path(settings.api_keys_file).read_text().splitlines()
        entries += [line for line in lines if line.strip() and not line.startswith("#")]
    keys: dict[str, str] = {}
    for entry in entries:
        name, sep, key = entry.strip().partition("=")
        if not sep or not name or len(key) < 16:
            raise ValueError(
                f"API key entry {name or entry!r}: use name=key with a key of 16+ characters")
        keys[key] = name
    return keys


class TokenBucket:
    """Allows `rate` calls per second on average with bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> float:
        """Takes a token; returns 0 on success, else the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class Decision:
    """Whether a call may go ahead: its principal, or the status that refuses it."""
    principal: str
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    status: status_pb2.Status | None = None


class Access:
    """API keys and per-key quotas, shared by the gateway's interceptor and the ext_authz
    service Envoy calls, so both paths draw on the same buckets."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._keys = load_keys(settings)
        self._rate = settings.quota_calls_per_s
        self._burst = settings.quota_burst
        self._buckets: dict[str, TokenBucket] = {}
        self.active = bool(self._keys) or self._rate > 0

    def decide(self, authorization: str) -> Decision:
        """Authenticates an `authorization` header value and takes a token for its key."""
        name = ANONYMOUS
        if self._keys:
            key = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else ""
            name = next((n for k, n in self._keys.items() if hmac.compare_digest(k, key)), "")
            if not name:
                REJECTED.labels("unknown", "UNAUTHENTICATED").inc()
                return Decision("", grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        if self._rate > 0:
            bucket = self._buckets.setdefault(name, TokenBucket(self._rate, self._burst))
            wait_s = bucket.take()
            if wait_s > 0:
                REJECTED.labels(name, "RESOURCE_EXHAUSTED").inc()
                message, status = _quota_status(name, self._rate, wait_s)
                return Decision(name, grpc.StatusCode.RESOURCE_EXHAUSTED, message, status)
        return Decision(name)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The access interceptor, only when keys or a quota are configured: open local
        development pays nothing for it."""
        return [AccessInterceptor(self)] if self.active else []


def _rejection(code: grpc.StatusCode, message: str,
               detail: status_pb2.Status | None = None) -> Handler:
    async def reject(request: object, ctx: Context) -> None:
        trailers = () if detail is None else (
            ("grpc-status-details-bin", detail.SerializeToString()),)
        await ctx.abort(code, message, trailers)

    return grpc.unary_unary_rpc_method_handler(reject)


def quota_failure(subject: str, rate: float, message: str) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED with a google.rpc.QuotaFailure naming the subject and the rate."""
    failure = error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(
            subject=subject, description=f"{rate:g} calls per second")])
    detail = any_pb2.Any()
    detail.Pack(failure)
    return status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message,
                             details=[detail])


def _quota_status(name: str, rate: float, retry_after_s: float) -> tuple[str, status_pb2.Status]:
    message = (f"quota exceeded for key '{name}': {rate:g} calls/s; "
               f"retry in {retry_after_s * 1000:.0f} ms")
    return message, quota_failure(f"api_key:{name}", rate, message)


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates by bearer API key (when keys are configured) and applies the quota."""

    def __init__(self, access: Access) -> None:
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Authenticates the call and applies its key's quota, or returns a rejecting handler."""
        if details.method.startswith(_OPEN_PREFIXES):
            return await continuation(details)
        authorization = ""
        for meta_key, value in details.invocation_metadata or ():
            if meta_key == "authorization":
                authorization = str(value)
        decision = self._access.decide(authorization)
        if decision.code != grpc.StatusCode.OK:
            return _rejection(decision.code, decision.message, decision.status)
        principal.set(decision.principal)
        return await continuation(details)
