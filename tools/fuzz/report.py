"""What a fuzz run found: status codes per method, as a table or JSON, and the findings.

A finding is a call that ended INTERNAL, UNKNOWN or DEADLINE_EXCEEDED (or failed on the
client side); each is listed with its method, status, details and body hex, enough to
send the same bytes again.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from tools.fuzz.bodies import Body
from tools.fuzz.discovery import Method

# Statuses a server must never answer to a bad body (DEADLINE_EXCEEDED: a cost bound is
# missing); CLIENT_ERROR is the fuzzer's own failure to make the call.
FINDING_CODES = ("DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "CLIENT_ERROR")
_CODE_ORDER = [c.name for c in grpc.StatusCode]
SHOWN_HEX_BYTES = 256


@dataclass(frozen=True)
class PlannedCall:
    """One call to make: the method, its number within the method, the bodies to send."""

    method: Method
    index: int
    bodies: tuple[Body, ...]


@dataclass(frozen=True)
class CallResult:
    """How one call ended."""

    call: PlannedCall
    code: str  # a grpc.StatusCode name, or CLIENT_ERROR
    details: str
    elapsed_s: float
    responses: int

    @property
    def is_finding(self) -> bool:
        """Whether the status is one a server must never answer (FINDING_CODES)."""
        return self.code in FINDING_CODES


def hex_of(data: bytes, limit: int | None = SHOWN_HEX_BYTES) -> str:
    """The bytes as hex, cut to `limit` bytes with the full length said."""
    if limit is None or len(data) <= limit:
        return data.hex()
    return f"{data[:limit].hex()}... ({len(data)} B in all)"


def describe(result: CallResult, seed: int, hex_limit: int | None = SHOWN_HEX_BYTES) -> str:
    """A finding as text: method, status, details, timing, then every body's hex."""
    call = result.call
    lines = [f"{result.code} from {call.method.path} (call {call.index}, seed {seed}, "
             f"{result.elapsed_s:.2f} s): {result.details[:500]!r}"]
    if not call.bodies:
        lines.append("  (a stream of no messages)")
    for number, body in enumerate(call.bodies, 1):
        lines.append(f"  body {number}/{len(call.bodies)} [{body.describe()}]: "
                     f"{hex_of(body.data, hex_limit) or '(empty)'}")
    return "\n".join(lines)


def _ordered(codes: set[str]) -> list[str]:
    ordinary = [c for c in _CODE_ORDER if c in codes and c not in FINDING_CODES]
    extra = sorted(codes - set(_CODE_ORDER) - set(FINDING_CODES))
    return [*ordinary, *extra, *FINDING_CODES[:3],
            *(["CLIENT_ERROR"] if "CLIENT_ERROR" in codes else [])]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


@dataclass
class Report:
    """Every call of a run, with the run's parameters."""

    target: str
    seed: int
    calls_per_method: int
    deadline_s: float
    methods: list[Method]
    results: list[CallResult]
    redrawn: dict[str, int]
    wall_s: float

    def codes(self) -> dict[str, Counter[str]]:
        """Method path -> count per status code."""
        counts: dict[str, Counter[str]] = {m.path: Counter() for m in self.methods}
        for result in self.results:
            counts[result.call.method.path][result.code] += 1
        return counts

    def calls(self) -> Counter[str]:
        """Method path -> calls made."""
        return Counter(r.call.method.path for r in self.results)

    def findings(self) -> list[CallResult]:
        """The calls that ended with a FINDING_CODES status."""
        return [r for r in self.results if r.is_finding]

    def by_kind(self) -> dict[str, Counter[str]]:
        """Body generator -> count per status code (unary and server-streaming calls only,
        where one call is one body)."""
        counts: dict[str, Counter[str]] = {}
        for r in self.results:
            if len(r.call.bodies) == 1:
                counts.setdefault(r.call.bodies[0].kind, Counter())[r.code] += 1
        return counts

    def table(self) -> str:
        """The per-method table (count per status code), totals, and then the findings."""
        per_method = self.codes()
        codes = _ordered({c for counts in per_method.values() for c in counts})
        elapsed: dict[str, list[float]] = {}
        for r in self.results:
            elapsed.setdefault(r.call.method.path, []).append(r.elapsed_s)
        rows: list[list[object]] = []
        for method in self.methods:
            counts, times = per_method[method.path], elapsed.get(method.path, [0.0])
            rows.append([method.short, method.shape, sum(counts.values()),
                         *(counts.get(c, 0) for c in codes),
                         f"{statistics.median(times) * 1000:.0f}", f"{max(times) * 1000:.0f}",
                         self.redrawn.get(method.path, 0)])
        total: Counter[str] = sum(per_method.values(), Counter())
        rows.append(["total", "", sum(total.values()), *(total.get(c, 0) for c in codes),
                     "", "", sum(self.redrawn.values())])
        lines = [f"Fuzzed {len(self.methods)} methods at {self.target}: seed {self.seed}, "
                 f"{self.calls_per_method} calls per method, deadline {self.deadline_s:g} s, "
                 f"{self.wall_s:.1f} s.", ""]
        lines += _table(["method", "shape", "calls", *codes, "p50 ms", "max ms", "redrawn"],
                        rows)
        kinds = self.by_kind()
        kind_codes = _ordered({c for counts in kinds.values() for c in counts})
        lines += ["", "By body generator (calls with one body):", ""]
        lines += _table(["generator", "calls", *kind_codes],
                        [[k, sum(v.values()), *(v.get(c, 0) for c in kind_codes)]
                         for k, v in sorted(kinds.items())])
        findings = self.findings()
        lines += ["", f"Findings ({', '.join(FINDING_CODES[:3])}): {len(findings)}"]
        lines += [describe(r, self.seed) for r in findings]
        lines += ["", "redrawn: bodies tools/fuzz/policy.py kept from the shared mesh "
                  "(accepted state changes, long generations) and drew again."]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The same as a JSON-ready dict, findings with their full body hex."""
        per_method = self.codes()
        return {
            "target": self.target, "seed": self.seed,
            "calls_per_method": self.calls_per_method, "deadline_s": self.deadline_s,
            "wall_s": round(self.wall_s, 3),
            "methods": {m.path: {"shape": m.shape, "calls": sum(per_method[m.path].values()),
                                 "codes": dict(per_method[m.path]),
                                 "redrawn": self.redrawn.get(m.path, 0)}
                        for m in self.methods},
            "totals": dict(sum(per_method.values(), Counter())),
            "by_generator": {k: dict(v) for k, v in self.by_kind().items()},
            "findings": [{
                "method": r.call.method.path, "call": r.call.index, "code": r.code,
                "details": r.details, "elapsed_s": round(r.elapsed_s, 3),
                "bodies": [{"kind": b.kind, "how": b.how, "hex": b.data.hex()}
                           for b in r.call.bodies],
            } for r in self.findings()],
        }
