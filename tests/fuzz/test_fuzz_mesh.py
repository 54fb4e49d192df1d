"""Seeded wire-level fuzzing of every public method through the real edge (issue 13).

Random bytes, descriptor-built messages and mutations of them go to every method that
reflection lists, with each method's call shape, through Envoy. Whatever the body, every
call must end with a deliberate status (never INTERNAL, UNKNOWN or DEADLINE_EXCEEDED), be
counted once on every hop (Envoy's cluster stats, the gateway's usage meter, the
backend's server metrics), and leave no traceback and no process down.

The mesh is the session's, shared with the other suites: tools/fuzz/policy.py keeps
accepted bodies from ingesting, deleting, recording or training anything, and from
asking for long generations (its docstring says why for each method). A failure names
the method, status, details and body hex; the findings with their full bodies are
written to a JSON file named in the message, and `python -m tools.fuzz --replay` sends
them again.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from tools.devmesh import PROCESSES, Mesh
from tools.fuzz.discovery import PUBLIC_PREFIX, Method, discover, list_services
from tools.fuzz.prom import (
    CLIENT_HANDLED,
    SERVER_HANDLED,
    CodeKey,
    MethodKey,
    fetch,
    growth,
    per_method,
    scrape,
)
from tools.fuzz.report import CallResult, Report, describe
from tools.fuzz.runner import fuzz

SEEDS = (1, 20261202)
CALLS_PER_METHOD = 250  # per seed
DEADLINE_S = 10.0
SETTLE_TIMEOUT_S = 15.0
SHOWN_FINDINGS = 12
_GATEWAY_PATH = "/cadenza.gateway.v1.GatewayService/"  # served by the gateway, not metered


@dataclass
class Fuzzed:
    """One fuzz run over the session mesh and what the mesh looked like around it."""

    gateway: str
    methods: list[Method]
    reports: list[Report]
    backend_of: dict[str, str]  # public service -> the process that serves it
    logs: dict[str, str]  # process -> what it logged during the run
    before: dict[tuple[str, str], Counter[CodeKey]]  # (process, family) -> counts
    after: dict[tuple[str, str], Counter[CodeKey]]
    findings_file: pathlib.Path
    wall_s: float

    def calls(self) -> Counter[str]:
        """Method path -> calls made, over every seed."""
        return sum((r.calls() for r in self.reports), Counter())

    def grown(self, process: str, family: str = SERVER_HANDLED) -> Counter[CodeKey]:
        """How much a process's counters grew during the run, per method and code."""
        return growth(self.before[process, family], self.after[process, family])

    def seen(self) -> Counter[CodeKey]:
        """(service, method, code) -> calls that ended so, as the fuzzer saw them."""
        return Counter((r.call.method.service, r.call.method.name, r.code)
                       for _, r in self.results())

    def results(self) -> list[tuple[int, CallResult]]:
        """(seed, result) for every call."""
        return [(r.seed, result) for r in self.reports for result in r.results]


def _key(method: Method) -> MethodKey:
    return method.service, method.name


def _metered(mesh: Mesh) -> Counter[CodeKey]:
    """The gateway's usage meter (what GetUsage reports), per method and code."""
    with grpc.insecure_channel(mesh.endpoints.address("gateway")) as channel:
        usage = gateway_pb2_grpc.GatewayServiceStub(channel).GetUsage(
            gateway_pb2.GetUsageRequest(group_by=[gateway_pb2.USAGE_GROUP_METHOD,
                                                  gateway_pb2.USAGE_GROUP_CODE]), timeout=5)
    return Counter({(*row.method.strip("/").split("/"), row.code): row.calls
                    for row in usage.rows})


def _edge_requests(mesh: Mesh) -> Counter[CodeKey]:
    """Requests Envoy completed per backend cluster, keyed (cluster, "", "")."""
    text = fetch(f"http://127.0.0.1:{mesh.endpoints.edge_admin_port}/stats/prometheus")
    return Counter({(s.labels["envoy_cluster_name"], "", ""): int(s.value)
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name == "envoy_cluster_upstream_rq_completed_total"})


def _counters(mesh: Mesh) -> dict[tuple[str, str], Counter[CodeKey]]:
    counts = {(name, family): scrape(mesh.endpoints.metrics_ports[name], family)
              for name in PROCESSES for family in (SERVER_HANDLED, CLIENT_HANDLED)}
    counts["usage", ""] = _metered(mesh)
    counts["edge", ""] = _edge_requests(mesh)
    return counts


def _wait_metered(mesh: Mesh, before: Counter[CodeKey], made: int) -> None:
    """Waits (bounded) until the usage meter has seen as many calls to the backends as
    were made: Envoy sends its access log in batches. The tests then compare exactly."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(growth(before, _metered(mesh)).values()) >= made:
            return
        time.sleep(0.2)


def _settled(mesh: Mesh) -> dict[tuple[str, str], Counter[CodeKey]]:
    """The counters once two scrapes half a second apart agree: calls cut off by their
    deadline may finish on the server just after the client gave up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = _counters(mesh)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _counters(mesh)
        if now == last:
            return now
        last = now
    return last


def _log_sizes(mesh: Mesh) -> dict[str, int]:
    return {name: (mesh.run_dir / f"{name}.log").stat().st_size for name in PROCESSES}


def _written_since(mesh: Mesh, sizes: dict[str, int]) -> dict[str, str]:
    logs = {}
    for name, size in sizes.items():
        with open(mesh.run_dir / f"{name}.log", "rb") as log:
            log.seek(size)
            logs[name] = log.read().decode(errors="replace")
    return logs


@pytest.fixture(scope="module")
def fuzzed(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    gateway = mesh.endpoints.public
    methods = discover(gateway)
    backend_of = {service: name for name in PROCESSES if name != "gateway"
                  for service in list_services(mesh.endpoints.address(name))
                  if service.startswith(PUBLIC_PREFIX)}
    sizes, before = _log_sizes(mesh), _counters(mesh)
    started = time.perf_counter()
    reports = [fuzz(gateway, seed, CALLS_PER_METHOD, deadline_s=DEADLINE_S, methods=methods)
               for seed in SEEDS]
    wall_s = time.perf_counter() - started
    made: Counter[str] = sum((r.calls() for r in reports), Counter())
    _wait_metered(mesh, before["usage", ""],
                  sum(n for path, n in made.items() if not path.startswith(_GATEWAY_PATH)))
    after = _settled(mesh)
    findings_file = tmp_path_factory.mktemp("fuzz") / "findings.json"
    findings_file.write_text(json.dumps([r.to_json() for r in reports], indent=1))
    return Fuzzed(gateway, methods, reports, backend_of, _written_since(mesh, sizes), before,
                  after, findings_file, wall_s)


def _explain(fuzzed: Fuzzed, found: list[tuple[int, CallResult]], what: str) -> str:
    per_method = Counter(f"{r.call.method.short} {r.code}" for _, r in found)
    lines = [f"{len(found)} calls {what}: {dict(per_method)}", ""]
    for seed, result in found[:SHOWN_FINDINGS]:
        lines.append(describe(result, seed))
        hexes = " ".join(b.data.hex() or '""' for b in result.call.bodies)
        if len(hexes) < 1500:
            lines.append(f"  replay: python -m tools.fuzz --target {fuzzed.gateway} "
                         f"--replay {result.call.method.short} {hexes}")
    lines += ["", f"the findings, bodies in full, as JSON: {fuzzed.findings_file}",
              f"the table: python -m tools.fuzz --target {fuzzed.gateway} --seed S "
              f"--calls-per-method {CALLS_PER_METHOD}"]
    return "\n".join(lines)


def test_every_public_method_is_fuzzed_with_its_call_shape(fuzzed: Fuzzed) -> None:
    services = {m.service for m in fuzzed.methods}
    # Everything a backend serves is public through the gateway, plus the gateway's own.
    assert set(fuzzed.backend_of) <= services
    assert {"cadenza.gateway.v1.GatewayService"} <= services
    shapes = {m.shape for m in fuzzed.methods}
    assert {"unary", "server_stream", "client_stream"} <= shapes
    expected = len(SEEDS) * CALLS_PER_METHOD
    assert fuzzed.calls() == Counter({m.path: expected for m in fuzzed.methods})


def test_no_call_ends_internal_or_unknown(fuzzed: Fuzzed) -> None:
    found = [(s, r) for s, r in fuzzed.results()
             if r.code in ("INTERNAL", "UNKNOWN", "CLIENT_ERROR")]
    if found:
        pytest.fail(_explain(fuzzed, found, "ended INTERNAL or UNKNOWN"), pytrace=False)


def test_no_call_runs_past_its_deadline(fuzzed: Fuzzed) -> None:
    # The policy sends nothing costly that the contract allows, so a deadline hit means
    # a request the server should have refused (or bounded) kept it busy.
    found = [(s, r) for s, r in fuzzed.results() if r.code == "DEADLINE_EXCEEDED"]
    if found:
        pytest.fail(_explain(fuzzed, found, f"ran past the {DEADLINE_S:g} s deadline "
                                            "(a missing cost bound)"), pytrace=False)


def test_no_process_logs_a_traceback(fuzzed: Fuzzed) -> None:
    excerpts = {name: [line[:1500] for line in text.splitlines() if "Traceback" in line][:3]
                for name, text in fuzzed.logs.items()}
    assert not any(excerpts.values()), json.dumps(
        {name: lines for name, lines in excerpts.items() if lines}, indent=1)


def test_every_process_is_alive_and_serving_afterwards(fuzzed: Fuzzed, mesh: Mesh) -> None:
    exited = {name: proc.returncode for name, proc in mesh.procs.items()
              if proc.poll() is not None}
    assert not exited, f"processes exited during the fuzz: {exited}"
    statuses = {}
    for name in PROCESSES:
        with grpc.insecure_channel(mesh.endpoints.address(name)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
            statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    assert statuses == {name: "SERVING" for name in PROCESSES}


def _only(counts: Counter[CodeKey], methods: list[Method]) -> dict[str, int]:
    names = {(m.service, m.name): m.short for m in methods}
    return {f"{names[service, method]} {code}": n
            for (service, method, code), n in sorted(counts.items())
            if (service, method) in names and n}


def _forwarded(fuzzed: Fuzzed) -> list[Method]:
    return [m for m in fuzzed.methods if m.service in fuzzed.backend_of]


def test_the_gateway_meters_every_call_once_under_the_status_the_caller_saw(
        fuzzed: Fuzzed) -> None:
    # From Envoy's access log: no call lost, none counted twice, each under its status.
    forwarded = _forwarded(fuzzed)
    assert _only(fuzzed.grown("usage", ""), forwarded) == _only(fuzzed.seen(), forwarded)


def test_the_edge_forwards_every_call_to_its_backend(fuzzed: Fuzzed, mesh: Mesh) -> None:
    # The test mesh has no API keys and no quota, so nothing is refused before forwarding.
    env = mesh.env_for("edge")
    assert env.get("CADENZA_EDGE_AUTHZ") == "0" and not mesh.keys
    calls = fuzzed.calls()
    expected: Counter[str] = Counter()
    for method in _forwarded(fuzzed):
        expected[fuzzed.backend_of[method.service]] += calls[method.path]
    grown = fuzzed.grown("edge", "")
    assert {backend: grown[backend, "", ""] for backend in expected} == dict(expected)


def _internal_calls(fuzzed: Fuzzed) -> Counter[CodeKey]:
    """Calls the backends made to each other (recommend and generate ask retrieval)."""
    return sum((fuzzed.grown(name, CLIENT_HANDLED) for name in PROCESSES), Counter())


def test_each_backend_counts_every_call_sent_to_it(fuzzed: Fuzzed) -> None:
    # The fuzzer's calls through the edge plus the other backends' calls: no call lost
    # between hops and none the server left uncounted.
    internal = per_method(_internal_calls(fuzzed))
    for method in _forwarded(fuzzed):
        backend = fuzzed.backend_of[method.service]
        received = per_method(fuzzed.grown(backend))[_key(method)]
        made = fuzzed.calls()[method.path]
        assert received == made + internal[_key(method)], (
            f"{method.short}: {backend} counted {received}, the fuzzer made {made} and "
            f"the other backends {internal[_key(method)]}")


def test_the_edge_relays_the_status_each_backend_sent(fuzzed: Fuzzed) -> None:
    # Per code this time: a status changed between the backend and the caller (e.g. a
    # local INTERNAL replacing the backend's INVALID_ARGUMENT) shows here.
    forwarded = _forwarded(fuzzed)
    received: Counter[CodeKey] = sum(
        (fuzzed.grown(backend) for backend in set(fuzzed.backend_of.values())), Counter())
    assert _only(fuzzed.seen() + _internal_calls(fuzzed), forwarded) == \
        _only(received, forwarded)
