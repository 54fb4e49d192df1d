"""Load loops and the table every benchmark prints."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Latency:
    """Latency percentiles and throughput of one measured load."""
    p50_ms: float
    p99_ms: float
    calls_per_s: float
    calls: int


async def load(call: Callable[[], Awaitable[object]], in_flight: int, duration_s: float,
               warmup_calls: int = 200) -> Latency:
    """Keeps `in_flight` calls going for `duration_s`; latency of each, overall throughput."""
    for _ in range(warmup_calls):
        await call()
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Latency(cuts[49] * 1000, cuts[98] * 1000, len(latencies) / elapsed, len(latencies))


@dataclass
class Row:
    """One line of the table: what was measured, ours against the reference."""

    benchmark: str
    setting: str
    ours: str
    reference: str
    ratio: str
    note: str = ""


def print_table(title: str, rows: list[Row], ours: str, reference: str) -> None:
    """Prints rows as a table with ours and the reference side by side, and their ratio."""
    headers = ("benchmark", "setting", ours, reference, "ratio", "note")
    cells = [headers] + [(r.benchmark, r.setting, r.ours, r.reference, r.ratio, r.note)
                         for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    line = "+".join("-" * (w + 2) for w in widths)
    print(f"\n{title}")
    print(line)
    for i, cell in enumerate(cells):
        print("|".join(f" {v:<{w}} " for v, w in zip(cell, widths, strict=True)))
        if i == 0:
            print(line)
    print(line)
