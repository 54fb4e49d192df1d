"""The committed Grafana dashboards are the generator's output, and every panel's PromQL
parses and has data in a real Prometheus after real traffic."""

from __future__ import annotations

import pathlib
import time
from types import ModuleType

from tests.ops.conftest import DEADLINE_S, Observed
from tests.support.scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
# Series the session mesh cannot produce: it runs with access control off, so nothing is
# refused at the edge (tests/ops/test_metric_units.py checks that counter directly).
EMPTY_IN_TEST_MESH = ("cadenza_gateway_rejected_total",)


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
        "overview.json", "gateway.json", "retrieval.json", "recommend.json", "generate.json"}
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
        rows = observed.query_until(substitute(expr, window),  # ValueError: a parse error
                                    0 if expr_may_be_empty(expr) else deadline)
        checked += 1
        if not rows and not expr_may_be_empty(expr):
            empty.append(f"{name} / {title}: {expr}")
    assert not empty, "panels without data after traffic:\n" + "\n".join(empty)
    assert checked >= 60


def expr_may_be_empty(expr: str) -> bool:
    return any(metric in expr for metric in EMPTY_IN_TEST_MESH)


def test_template_variable_queries_find_the_mesh(observed: Observed) -> None:
    for name, board in generator().dashboards().items():
        variable = board["templating"]["list"][1]
        # label_values(<selector>, <label>) is Grafana's; its selector is PromQL.
        inner = variable["query"]["query"].removeprefix("label_values(")
        selector, label = inner.rsplit(",", 1)
        rows = observed.prometheus.query(selector)
        values = {r["metric"][label.strip(" )")] for r in rows}
        expected_count = 4 if name == "overview.json" else 1
        assert len(values) == expected_count, (name, values)

