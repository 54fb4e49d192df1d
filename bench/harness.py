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
    return await _measured(lambda: None if time.perf_counter() >= stop_at else (None,),
                           lambda _: call(), in_flight)


async def load_each(call: Callable[[T], Awaitable[object]], items: list[T], in_flight: int,
                    untimed: Callable[[T], Awaitable[object]] | None = None) -> Latency:
    """One call per item, in order, `in_flight` at a time; latency of each, throughput.
    `untimed(item)`, when given, is awaited just before the item's call, outside its time
    (throughput then counts it)."""
    queue = list(reversed(items))
    return await _measured(lambda: (queue.pop(),) if queue else None, call, in_flight,
                           untimed)


async def _measured(next_item: Callable[[], tuple[T] | None],
                    call: Callable[[T], Awaitable[object]], in_flight: int,
                    untimed: Callable[[T], Awaitable[object]] | None = None) -> Latency:
    """`in_flight` workers, each calling `call` on the next item until there is none."""
    latencies: list[float] = []

    async def worker() -> None:
        while (picked := next_item()) is not None:
            [item] = picked
            if untimed is not None:
                await untimed(item)
            started = time.perf_counter()
            await call(item)
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
