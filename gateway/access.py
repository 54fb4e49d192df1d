"""Who is calling (API keys) and whether they may call now (per-key rate quota)."""

from __future__ import annotations

import contextvars
import hmac
import pathlib
import time
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cadenza.kit.interceptor import Context, Handler
from gateway.settings import GatewaySettings
from gateway.usage import REJECTED

ANONYMOUS = "anonymous"
principal: contextvars.ContextVar[str] = contextvars.ContextVar("principal", default=ANONYMOUS)

# Probes and tooling must work without a key.
_OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


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


def _rejection(code: grpc.StatusCode, message: str,
               detail: status_pb2.Status | None = None) -> Handler:
    async def reject(request: object, ctx: Context) -> None:
        trailers = () if detail is None else (
            ("grpc-status-details-bin", detail.SerializeToString()),)
        await ctx.abort(code, message, trailers)

    return grpc.unary_unary_rpc_method_handler(reject)


def _quota_status(name: str, rate: float, retry_after_s: float) -> tuple[str, status_pb2.Status]:
    message = (f"quota exceeded for key '{name}': {rate:g} calls/s; "
               f"retry in {retry_after_s * 1000:.0f} ms")
    failure = error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(
            subject=f"api_key:{name}", description=f"{rate:g} calls per second")])
    detail = any_pb2.Any()
    detail.Pack(failure)
    return message, status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message,
                                      details=[detail])


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates by bearer API key (when keys are configured) and applies the quota."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._keys = load_keys(settings)
        self._rate = settings.quota_calls_per_s
        self._burst = settings.quota_burst
        self._buckets: dict[str, TokenBucket] = {}
        self.active = bool(self._keys) or self._rate > 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Authenticates the call and applies its key's quota, or returns a rejecting handler."""
        if details.method.startswith(_OPEN_PREFIXES):
            return await continuation(details)
        name = ANONYMOUS
        if self._keys:
            key = ""
            for meta_key, value in details.invocation_metadata or ():
                if meta_key == "authorization" and str(value).startswith("Bearer "):
                    key = str(value)[len("Bearer "):]
            name = next((n for k, n in self._keys.items() if hmac.compare_digest(k, key)), "")
            if not name:
                REJECTED.labels("unknown", "UNAUTHENTICATED").inc()
                return _rejection(grpc.StatusCode.UNAUTHENTICATED,
                                  "send a valid API key as 'authorization: Bearer <key>'")
        if self._rate > 0:
            bucket = self._buckets.setdefault(name, TokenBucket(self._rate, self._burst))
            wait_s = bucket.take()
            if wait_s > 0:
                REJECTED.labels(name, "RESOURCE_EXHAUSTED").inc()
                message, status = _quota_status(name, self._rate, wait_s)
                return _rejection(grpc.StatusCode.RESOURCE_EXHAUSTED, message, status)
        principal.set(name)
        return await continuation(details)


def access_interceptors(settings: GatewaySettings) -> list[grpc.aio.ServerInterceptor]:
    """The access interceptor, only when keys or a quota are configured: open local
    development pays nothing for it."""
    interceptor = AccessInterceptor(settings)
    return [interceptor] if interceptor.active else []
