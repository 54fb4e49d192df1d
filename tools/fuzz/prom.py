"""Counters from a Prometheus /metrics page, per (grpc_service, grpc_method, grpc_code).

The fuzz suite reads them before and after a run to check that every call was counted
once on every hop, under the status its caller saw (tests/fuzz).
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Mapping
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

CodeKey = tuple[str, str, str]  # (grpc_service, grpc_method, grpc_code)
MethodKey = tuple[str, str]  # (grpc_service, grpc_method)
SERVER_HANDLED = "grpc_server_handled"
CLIENT_HANDLED = "grpc_client_handled"
K = TypeVar("K")


def fetch(url: str, timeout_s: float = 5.0) -> str:
    """The text exposition at url (e.g. http://127.0.0.1:9091/metrics)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return str(reply.read().decode())


def handled(text: str, family: str = SERVER_HANDLED) -> Counter[CodeKey]:
    """The family's `_total` samples per method and code, summed over call types."""
    totals: Counter[CodeKey] = Counter()
    for metrics in text_string_to_metric_families(text):
        if metrics.name != family:
            continue
        for sample in metrics.samples:
            if sample.name == family + "_total":
                labels = sample.labels
                key = (labels["grpc_service"], labels["grpc_method"], labels["grpc_code"])
                totals[key] += int(sample.value)
    return totals


def per_method(counts: Mapping[CodeKey, int]) -> Counter[MethodKey]:
    """The counts summed over codes."""
    totals: Counter[MethodKey] = Counter()
    for (service, method, _code), value in counts.items():
        totals[service, method] += value
    return totals


def scrape(metrics_port: int, family: str = SERVER_HANDLED,
           host: str = "127.0.0.1") -> Counter[CodeKey]:
    """handled() of the process serving metrics on this port."""
    return handled(fetch(f"http://{host}:{metrics_port}/metrics"), family)


def growth(before: Mapping[K, int], after: Mapping[K, int]) -> Counter[K]:
    """How much each count grew (keys absent before count from 0)."""
    return Counter({key: after[key] - before.get(key, 0) for key in after
                    if after[key] != before.get(key, 0)})
