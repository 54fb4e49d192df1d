"""Plans the calls (bodies per method, from the seed) and makes them as raw bytes.

Each method draws from its own Random, seeded by the run's seed and the method's path, so
a method's bodies depend on nothing else: `--only` reproduces them exactly, and an RPC
added later changes no other method's bodies.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import grpc

from tools.fuzz.bodies import Body, BodyMaker
from tools.fuzz.discovery import Method, discover
from tools.fuzz.policy import allows
from tools.fuzz.report import CallResult, PlannedCall, Report

DEFAULT_DEADLINE_S = 10.0
DEFAULT_CONCURRENCY = 4
# How often a body the policy refuses is redrawn before a junk one is sent instead.
MAX_REDRAWS = 50
# A lone continuation byte: never decodes, whatever the type.
NEUTRAL = Body("neutral", b"\xff")
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024)]


@dataclass
class Plan:
    """Every call to make, and how many bodies the policy made redrawn, per method path."""

    calls: list[PlannedCall]
    redrawn: dict[str, int]


def _stream_length(rng: random.Random) -> int:
    """Messages in a client stream: mostly 1-3, sometimes up to 50, now and then none."""
    roll = rng.random()
    if roll < 0.05:
        return 0
    if roll < 0.7:
        return rng.randint(1, 3)
    return rng.randint(4, 10) if roll < 0.95 else rng.randint(11, 50)


def plan_method(method: Method, seed: int, calls: int) -> tuple[list[PlannedCall], int]:
    """The calls for one method and how many bodies were redrawn for the policy."""
    rng = random.Random(f"{seed}:{method.path}")
    maker = BodyMaker(rng, method.request_descriptor)
    planned, redrawn = [], 0
    for index in range(calls):
        count = _stream_length(rng) if method.client_streaming else 1
        bodies = []
        for _ in range(count):
            for _attempt in range(MAX_REDRAWS):
                body = maker.draw()
                if allows(method.short, method.request_class, body.data):
                    break
                redrawn += 1
            else:
                body = NEUTRAL
            bodies.append(body)
        planned.append(PlannedCall(method, index, tuple(bodies)))
    return planned, redrawn


def plan(methods: Sequence[Method], seed: int, calls_per_method: int) -> Plan:
    """Calls for every method, interleaved (one of each in turn) so slow ones overlap."""
    per_method, redrawn = [], {}
    for method in methods:
        calls, redrawn[method.path] = plan_method(method, seed, calls_per_method)
        per_method.append(calls)
    interleaved = [calls[i] for i in range(calls_per_method) for calls in per_method]
    return Plan(interleaved, redrawn)


def invoke(channel: grpc.Channel, call: PlannedCall, deadline_s: float) -> CallResult:
    """Makes one call with the method's shape; the status is the result, never an exception.

    The synchronous client, on purpose: when a server ends a client stream early,
    grpc.aio's client can fail the pending write and report a local INTERNAL ("Internal
    error from Core") instead of the server's status; the synchronous one keeps the
    server's status, so what this reports is what the server said.
    """
    method, data = call.method, [b.data for b in call.bodies]
    # Raw bytes both ways: no serializer, no deserializer (the stubs cannot type that).
    raw: Any = channel
    started = time.perf_counter()
    responses, code, details = 0, "OK", ""
    try:
        if method.shape == "unary":
            raw.unary_unary(method.path)(data[0], timeout=deadline_s)
            responses = 1
        elif method.shape == "server_stream":
            for _ in raw.unary_stream(method.path)(data[0], timeout=deadline_s):
                responses += 1
        elif method.shape == "client_stream":
            raw.stream_unary(method.path)(iter(data), timeout=deadline_s)
            responses = 1
        else:
            for _ in raw.stream_stream(method.path)(iter(data), timeout=deadline_s):
                responses += 1
    except grpc.RpcError as error:
        status = cast(grpc.Call, error)  # what grpcio raises is both
        code, details = status.code().name, status.details() or ""
    except Exception as error:  # the client side failing is a finding too
        code, details = "CLIENT_ERROR", repr(error)
    return CallResult(call, code, details, time.perf_counter() - started, responses)


def execute(target: str, calls: Iterable[PlannedCall], deadline_s: float = DEFAULT_DEADLINE_S,
            concurrency: int = DEFAULT_CONCURRENCY) -> list[CallResult]:
    """Makes the calls, at most `concurrency` at a time; results in plan order."""
    with grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel, \
            ThreadPoolExecutor(concurrency, thread_name_prefix="fuzz") as pool:
        return list(pool.map(lambda c: invoke(channel, c, deadline_s), calls))


def select(methods: Sequence[Method], only: Sequence[str] = ()) -> list[Method]:
    """The methods whose path contains any of `only` (all of them when it is empty)."""
    return [m for m in methods if not only or any(part in m.path for part in only)]


def fuzz(target: str, seed: int, calls_per_method: int, *, only: Sequence[str] = (),
               deadline_s: float = DEFAULT_DEADLINE_S,
               concurrency: int = DEFAULT_CONCURRENCY,
               methods: Sequence[Method] | None = None) -> Report:
    """Discovers (unless given) the methods, plans and makes the calls; the whole report."""
    if methods is None:
        methods = discover(target)
    chosen = select(methods, only)
    planned = plan(chosen, seed, calls_per_method)
    started = time.perf_counter()
    results = execute(target, planned.calls, deadline_s, concurrency)
    return Report(target=target, seed=seed, calls_per_method=calls_per_method,
                  deadline_s=deadline_s, methods=chosen, results=results,
                  redrawn=planned.redrawn, wall_s=time.perf_counter() - started)
