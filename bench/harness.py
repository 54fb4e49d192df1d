"""Load loops and the table every benchmark prints."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


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
    stop_at = time.perf_counter() + duration_s
    return await _measured(lambda: call() if time.perf_counter() < stop_at else None,
                           in_flight)


async def load_each(call: Callable[[T], Awaitable[object]], items: list[T],
                    in_flight: int) -> Latency:
    """One call per item, in order, `in_flight` at a time; latency of each, throughput."""
    queue = list(reversed(items))
    return await _measured(lambda: call(queue.pop()) if queue else None, in_flight)


async def _measured(next_call: Callable[[], Awaitable[object] | None],
                    in_flight: int) -> Latency:
    """`in_flight` workers, each awaiting `next_call()` until it gives None."""
    latencies: list[float] = []

    async def worker() -> None:
        while True:
            started = time.perf_counter()
            pending = next_call()
            if pending is None:
                return
            await pending
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
