"""`python -m tools.fuzz --target HOST:PORT --seed S --calls-per-method N [--json]`.

Prints the status codes per method (and the findings with their body hex); exits 1 when
any call ended INTERNAL, UNKNOWN or DEADLINE_EXCEEDED, so it can gate a pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys

from tools.fuzz.bodies import Body
from tools.fuzz.discovery import PUBLIC_PREFIX, Method, discover
from tools.fuzz.report import FINDING_CODES, PlannedCall
from tools.fuzz.runner import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE_S, execute, fuzz, select


def _replay(target: str, methods: list[Method], args: list[str], deadline_s: float) -> int:
    """Sends one call with the given bodies; 1 when it ends with a finding's status."""
    exact = [m for m in methods if args[0] in (m.path, m.short, m.name)]
    chosen = exact or select(methods, args[:1])
    if len(chosen) != 1:
        print(f"{args[0]!r} matches {len(chosen)} methods; name one", file=sys.stderr)
        return 2
    bodies = tuple(Body("replayed", bytes.fromhex(h)) for h in args[1:])
    result, = execute(target, [PlannedCall(chosen[0], 0, bodies)], deadline_s)
    print(f"{chosen[0].path}: {result.code} after {result.elapsed_s:.3f} s, "
          f"{result.responses} responses: {result.details}")
    return 1 if result.code in FINDING_CODES else 0


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments, runs the fuzzer against the target and prints the report."""
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051",
                        help="the gateway's gRPC address (default: `make up`'s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls-per-method", type=int, default=100)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="fuzz only methods whose path contains TEXT (repeatable); "
                             "their bodies are the same as in a full run")
    parser.add_argument("--prefix", default=PUBLIC_PREFIX,
                        help=f"fuzz services whose name starts with this ({PUBLIC_PREFIX!r})")
    parser.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--replay", nargs="+", metavar=("METHOD", "HEX"),
                        help="send these bodies (hex, one per stream message; \"\" for an "
                             "empty one) once to METHOD (its name, Service/Name or path) and "
                             "print the status")
    parser.add_argument("--list", action="store_true",
                        help="only list the methods reflection finds, with their shapes")
    args = parser.parse_args(argv)

    methods = discover(args.target, args.prefix)
    if args.list:
        for method in methods:
            print(f"{method.path}  {method.shape}")
        return
    if args.replay:
        sys.exit(_replay(args.target, methods, args.replay, args.deadline_s))
    report = fuzz(args.target, args.seed, args.calls_per_method, only=args.only,
                  deadline_s=args.deadline_s, concurrency=args.concurrency, methods=methods)
    print(json.dumps(report.to_json(), indent=1) if args.json else report.table())
    sys.exit(1 if report.findings() else 0)
