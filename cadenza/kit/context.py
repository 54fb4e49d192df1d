"""Per-call context (request id, deadline) that follows a request across hops."""

from __future__ import annotations

import contextvars
import time
import uuid

REQUEST_ID_KEY = "x-request-id"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# Absolute deadline of the call being served, on the time.monotonic() clock.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def new_request_id() -> str:
    """A fresh random request id."""
    return uuid.uuid4().hex[:16]


def remaining_s() -> float | None:
    """Seconds left before the inbound call's deadline, or None when it has none."""
    end = deadline.get()
    return None if end is None else max(0.0, end - time.monotonic())


def outbound_timeout(timeout_s: float | None) -> float | None:
    """The timeout for an outbound call: the tighter of its own and the caller's."""
    left = remaining_s()
    if left is None:
        return timeout_s
    return left if timeout_s is None else min(left, timeout_s)
