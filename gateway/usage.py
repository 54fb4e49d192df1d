"""Usage metering: calls and bytes per API key, method and status code."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter

# Principals are the configured key names (a handful), so the label stays low-cardinality.
CALLS = Counter("cadenza_gateway_calls_total", "Calls forwarded, by key, backend and code.",
                ("principal", "backend", "grpc_code"))
BYTES = Counter("cadenza_gateway_bytes_total", "Message bytes forwarded, by key and direction.",
                ("principal", "backend", "direction"))
# Refusals at the edge never reach a backend, so calls_total does not see them. Failed
# authentication has no principal: it is counted as "unknown".
REJECTED = Counter("cadenza_gateway_rejected_total",
                   "Calls refused by the gateway: UNAUTHENTICATED (no valid key) or "
                   "RESOURCE_EXHAUSTED (over the key's quota).", ("principal", "grpc_code"))


@dataclass
class MethodTotals:
    """Calls and bytes of one method and status code."""
    calls: int = 0
    request_bytes: int = 0
    response_bytes: int = 0


class UsageMeter:
    """Keeps per-key totals in memory (for GetUsage) and mirrors them to Prometheus."""

    def __init__(self) -> None:
        self._totals: dict[str, dict[tuple[str, str], MethodTotals]] = defaultdict(
            lambda: defaultdict(MethodTotals))
        # Metric children by (principal, backend, code), looked up once each.
        self._children: dict[tuple[str, str, grpc.StatusCode], tuple[Any, Any, Any]] = {}

    def record(self, principal: str, backend: str, method: str, code: grpc.StatusCode,
               request_bytes: int, response_bytes: int) -> None:
        """Counts one finished call for its key, and in the usage metrics."""
        totals = self._totals[principal][(method, code.name)]
        totals.calls += 1
        totals.request_bytes += request_bytes
        totals.response_bytes += response_bytes
        key = (principal, backend, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                CALLS.labels(principal, backend, code.name),
                BYTES.labels(principal, backend, "in"),
                BYTES.labels(principal, backend, "out"))
        children[0].inc()
        children[1].inc(request_bytes)
        children[2].inc(response_bytes)

    def totals(self, principal: str) -> dict[tuple[str, str], MethodTotals]:
        """A key's totals per (method, status code)."""
        return dict(self._totals.get(principal, {}))
