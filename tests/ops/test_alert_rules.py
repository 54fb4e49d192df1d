"""The alert rules: promtool checks and unit tests, what every alert carries, and the SLI
expressions run against the real Prometheus scraping the mesh."""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client import REGISTRY

from cadenza.generate.v1 import generate_pb2 as gpb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.recommend.v1 import recommend_pb2 as rpb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from tests.support.scripts import load_script
from tools.devmesh import Mesh

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
RULE_FILES = sorted(RULES.glob("*.yml"))

# The modules that define every metric the services export.
METRIC_MODULES = (
    "cadenza.kit.metrics", "gateway.usage", "services.retrieval.metrics",
    "services.recommend.metrics", "services.generate.metrics",
)
# Written by Prometheus itself for every target, not by our code.
SCRAPE_SERIES = {"up"}
# Per metric type, the series names a family exports.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created"), "summary": ("_count", "_sum")}

RETRIEVAL = "cadenza.retrieval.v1.RetrievalService"
RECOMMEND = "cadenza.recommend.v1.RecommendService"
GENERATE = "cadenza.generate.v1.GenerateService"
TIMEOUT_S = 120


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's prometheus (tools/system-deps.sh)")
    done = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _slo_rules() -> ModuleType:
    return load_script(RULES / "slo_rules.py", "slo_rules")


def test_rule_files_pass_promtool_check() -> None:
    assert RULE_FILES, "no rule files"
    _promtool("check", "rules", *(str(p.relative_to(ROOT)) for p in RULE_FILES))


def test_committed_prometheus_config_loads_every_rule_file() -> None:
    output = _promtool("check", "config", "deploy/prometheus/prometheus.yml")
    for path in RULE_FILES:
        assert f"Checking {path.relative_to(ROOT)}" in output, output


def test_rule_unit_tests_pass_promtool() -> None:
    tests = sorted(RULE_TESTS.glob("*.yml"))
    assert tests, "no promtool rule tests"
    _promtool("test", "rules", *(str(p.relative_to(ROOT)) for p in tests))


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    fired, quiet = set(), set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", ()):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - fired == set(), "alerts never seen firing in a test"
    assert names - quiet == set(), "alerts never seen staying quiet in a test"


def test_slo_rules_file_is_what_its_generator_writes() -> None:
    assert (RULES / "slo.yml").read_text() == _slo_rules().render_slo(), (
        "slo.yml is stale: run python deploy/prometheus/rules/slo_rules.py")


def test_prometheus_rule_holds_every_group() -> None:
    resource = yaml.safe_load(_slo_rules().prometheus_rule("cadenza"))
    assert resource["kind"] == "PrometheusRule"
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert resource["spec"]["groups"] == groups


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    runbook = (RULES / "RUNBOOK.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbook.splitlines()
               if line.startswith("## ")}
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in {"page", "ticket"}, name
        annotations = alert.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        page, _, anchor = annotations.get("runbook_url", "").partition("#")
        assert (ROOT / page).is_file(), f"{name}: runbook {page!r} missing"
        assert anchor in anchors, f"{name}: no section #{anchor} in {page}"


def _defined_series() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = set(SCRAPE_SERIES)
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


# What is left of PromQL once strings, matchers, ranges and label lists are gone: metric
# names, function and aggregation names (followed by "("), keywords and numbers.
_STRIPPED = re.compile(r'"(?:\\.|[^"\\])*"|\{[^}]*\}|\[[^\]]*\]'
                       r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def _series_names(expr: str) -> set[str]:
    return {n for n in _NAME.findall(_STRIPPED.sub(" ", expr)) if n.lower() not in _KEYWORDS}


def test_series_names_are_read_from_promql() -> None:
    expr = ('sum by (job) (rate(a_total{le="0.25", x=~"y|z"}[5m])) / on (job) b:c:rate5m '
            "> 14.4 * 0.001 and time() - d offset 1d")
    assert _series_names(expr) == {"a_total", "b:c:rate5m", "d"}


def test_every_metric_the_rules_read_is_defined_in_the_code() -> None:
    rules = _rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    defined = _defined_series()
    read = set().union(*(_series_names(rule["expr"]) for rule in rules))
    assert read, "no series names found in the rules"
    assert read - recorded - defined == set(), "rules read series nobody exports"


# -- the SLIs on real data -------------------------------------------------------------

def _expect_code(code: grpc.StatusCode, call: Any, request: Any) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(request, timeout=TIMEOUT_S)
        if hasattr(result, "__iter__"):
            list(result)  # a server stream fails while it is read
    assert caught.value.code() == code, caught.value.details()


@pytest.fixture(scope="module")
def slis_observed(observed: Any, mesh: Mesh) -> Any:
    """The shared observation plus a second round of calls through the gateway.

    A series is born at its first increment, which rate() cannot see; a method called
    once in the shared traffic would read as no traffic (NaN ratios). These calls land
    on series Prometheus has already scraped, so every SLI below has a rate.
    """
    observed.wait_scraped_since(time.time())
    prefix = observed.traffic.prefix
    with grpc.insecure_channel(mesh.endpoints.address("gateway")) as channel:
        retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        recommend = recommend_pb2_grpc.RecommendServiceStub(channel)
        generate = generate_pb2_grpc.GenerateServiceStub(channel)
        for _ in range(3):
            retrieval.GetTrack(tpb.GetTrackRequest(track_id=f"{prefix}-0"), timeout=TIMEOUT_S)
            recommend.Recommend(rpb.RecommendRequest(user_id=f"{prefix}-user-0", limit=5),
                                timeout=TIMEOUT_S)
            generate.ListModels(gpb.ListModelsRequest(), timeout=TIMEOUT_S)
        assert list(generate.Generate(gpb.GenerateRequest(bars=1, seed=3), timeout=TIMEOUT_S))
        # Callers' mistakes: they must not count as errors.
        _expect_code(grpc.StatusCode.INVALID_ARGUMENT, retrieval.GetTrack,
                     tpb.GetTrackRequest(track_id="no spaces please"))
        _expect_code(grpc.StatusCode.NOT_FOUND, retrieval.GetTrack,
                     tpb.GetTrackRequest(track_id=f"{prefix}-missing"))
        _expect_code(grpc.StatusCode.INVALID_ARGUMENT, recommend.Recommend,
                     rpb.RecommendRequest(user_id=f"{prefix}-user-0", limit=500))
        _expect_code(grpc.StatusCode.INVALID_ARGUMENT, generate.Generate,
                     gpb.GenerateRequest(sampling=gpb.Sampling(top_p=1.5)))
    observed.wait_scraped_since(time.time())
    return observed


def _sli_exprs(record_prefix: str) -> list[tuple[str, dict[str, str]]]:
    """The 5m-window rules whose record name starts with the prefix: (expr, static labels)."""
    return [(rule["expr"], rule.get("labels", {})) for rule in _rules()
            if rule.get("record", "").startswith(record_prefix)
            and rule["record"].endswith("rate5m")]


def _query_until(observed: Any, promql: str, want: set[tuple[str, str]],
                 static: dict[str, str], positive: bool = False,
                 timeout_s: float = 60.0) -> dict[tuple[str, str], float]:
    """Polls until every wanted (job, grpc_service) has a number (above 0 if `positive`):
    scrapes lag the calls. A recording rule's static labels count as the result's."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = {}
        for row in observed.prometheus.query(promql):
            labels = {**static, **row["metric"]}
            got[labels.get("job", ""), labels.get("grpc_service", "")] = float(row["value"][1])
        numbers = {key for key, value in got.items()
                   if not math.isnan(value) and (value > 0 or not positive)}
        if want <= numbers or time.monotonic() > deadline:
            return got
        time.sleep(1.0)


def test_slis_cover_every_service_and_count_only_server_errors(slis_observed: Any) -> None:
    # Every call failed with INVALID_ARGUMENT or NOT_FOUND, or succeeded: callers'
    # mistakes do not spend the budget, so every error ratio is exactly 0.
    want = {("cadenza-retrieval", RETRIEVAL), ("cadenza-recommend", RECOMMEND),
            ("cadenza-generate", GENERATE), ("cadenza-gateway", RETRIEVAL),
            ("cadenza-gateway", RECOMMEND), ("cadenza-gateway", GENERATE)}
    [(requests, static)] = _sli_exprs("job_grpc_service:grpc_server_requests:")
    rates = _query_until(slis_observed, requests, want, static, positive=True)
    assert {key: rates.get(key) for key in want if not rates.get(key, 0) > 0} == {}
    [(errors, static)] = _sli_exprs("job_grpc_service:grpc_server_errors:")
    ratios = _query_until(slis_observed, errors, want, static)
    assert {key: ratios.get(key) for key in want if ratios.get(key) != 0} == {}


def test_latency_slis_find_their_buckets(slis_observed: Any) -> None:
    # Each latency SLI names one `le` bound; a bound written differently from what
    # prometheus_client exports ("1" for "1.0") would leave it without data.
    expected = {"0.25": {("cadenza-retrieval", RETRIEVAL), ("cadenza-gateway", RETRIEVAL),
                         ("cadenza-generate", GENERATE), ("cadenza-gateway", GENERATE)},
                "0.5": {("cadenza-recommend", RECOMMEND), ("cadenza-gateway", RECOMMEND)},
                "1.0": {("cadenza-generate", GENERATE)}}
    slis = _sli_exprs("job_grpc_service:grpc_server_slow:")
    assert sorted(labels["threshold_s"] for _, labels in slis) == sorted(expected)
    for expr, labels in slis:
        want = expected[labels["threshold_s"]]
        ratios = _query_until(slis_observed, expr, want, labels)
        assert {key: ratios.get(key) for key in want
                if not 0 <= ratios.get(key, math.nan) <= 1} == {}, labels



def _alert_expr(name: str) -> str:
    [alert] = [a for a in _alerts() if a["alert"] == name]
    return str(alert["expr"])


def _left_of_threshold(expr: str) -> str:
    """The measured side of `measure > threshold` (the expression's last comparison)."""
    measure, _, _threshold = expr.rpartition(">")
    return measure


def test_alert_measures_join_on_the_real_labels(slis_observed: Any) -> None:
    # Ratios of two metrics only have a value where their labels line up: run each
    # alert's measured side on the real data and look at who is in the result.
    query = slis_observed.prometheus.query

    saturation = query(_left_of_threshold(_alert_expr("CadenzaGenerateSaturated")))
    assert [r["metric"] for r in saturation] == [{"job": "cadenza-generate"}]
    assert 0 <= float(saturation[0]["value"][1]) <= 1

    unavailable = query(_left_of_threshold(_alert_expr("CadenzaGatewayBackendUnavailable")))
    shares = {r["metric"]["backend"]: float(r["value"][1]) for r in unavailable}
    assert shares == {"retrieval": 0.0, "recommend": 0.0, "generate": 0.0}

    # The traffic trained and published a model a moment ago: far from stale.
    first_line = _alert_expr("CadenzaRecommendModelStale").splitlines()[0]
    age = query(_left_of_threshold(first_line))
    assert [r["metric"] for r in age] == [{"job": "cadenza-recommend"}]
    assert float(age[0]["value"][1]) < 3600
