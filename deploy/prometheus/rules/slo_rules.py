"""Writes slo.yml (SLI recording rules and burn-rate alerts); wraps the rules as a PrometheusRule.

The SLIs repeat the same three expressions over seven windows and the alerts pair those
windows by tier; writing both from two tables keeps windows, thresholds and alerts from
drifting apart. The other alerts (alerts.yml) are written by hand.

    python deploy/prometheus/rules/slo_rules.py                    # rewrite slo.yml
    python deploy/prometheus/rules/slo_rules.py --prometheus-rule  # PrometheusRule on stdout
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SLO_FILE = HERE / "slo.yml"
# Each alert has a section in the runbook beside this file, anchored by its name.
RUNBOOK = "deploy/prometheus/rules/RUNBOOK.md"


@dataclass(frozen=True)
class Tier:
    """Alert when both windows burn the budget faster than `burn` times the sustainable
    rate: the long window says it matters, the short one that it is still happening."""

    severity: str
    long: str
    short: str
    burn: float


# Multiwindow, multi-burn-rate alerts (Google SRE workbook, ch. 5), for a 30-day budget:
# 2% of it in 1h or 5% in 6h pages; 10% in 1d or in 3d makes a ticket.
TIERS = (
    Tier("page", "1h", "5m", 14.4),
    Tier("page", "6h", "30m", 6),
    Tier("ticket", "1d", "2h", 3),
    Tier("ticket", "3d", "6h", 1),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# Server-side failures: they burn the error budget. Everything else is either success or
# the caller's doing (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
# PERMISSION_DENIED, UNAUTHENTICATED, CANCELLED, RESOURCE_EXHAUSTED when generate sheds
# load: that one is watched by the saturation alerts instead). UNIMPLEMENTED only reaches
# these metrics from a registered method without a body, i.e. a deployment skew, so it
# counts. DEADLINE_EXCEEDED counts: callers who set no deadline get the gateway's
# generous defaults (30 s unary, 600 s streams), so running out means we were too slow.
SERVER_ERROR_CODES = (
    "UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED", "UNIMPLEMENTED",
)

# Only cadenza's own services: health and reflection are not observed anyway.
SERVICES = 'grpc_service=~"cadenza\\\\..+"'
RECOMMEND = "cadenza.recommend.v1.RecommendService"
GENERATE = "cadenza.generate.v1.GenerateService"


@dataclass(frozen=True)
class LatencySli:
    """Share of calls slower than threshold_s, from one histogram's buckets."""

    sli: str
    threshold_s: str  # a bucket bound exactly as prometheus_client writes `le`
    histogram: str
    selector: str  # label matchers inside {}
    by: str  # labels kept
    extra_labels: tuple[tuple[str, str], ...] = ()


# Unary calls only: client streams (IngestTrack, RecordEvents) last as long as the upload,
# and TrainModel is a batch job behind a unary RPC (watched by the training alerts).
_UNARY = 'grpc_type="unary", grpc_method!="TrainModel"'
LATENCY_SLIS = (
    # Gateway's own methods, retrieval and generate's ListModels: 250 ms. Searches run
    # 16-38 ms p50 at 10k tracks through the gateway (README, Measuring).
    LatencySli("unary", "0.25", "grpc_server_handling_seconds",
               f'{_UNARY}, {SERVICES}, grpc_service!="{RECOMMEND}"', "job, grpc_service"),
    # Recommend's default blend runs an example search per call: p99 374-429 ms measured,
    # so 500 ms (the next bucket bound).
    LatencySli("unary", "0.5", "grpc_server_handling_seconds",
               f'{_UNARY}, grpc_service="{RECOMMEND}"', "job, grpc_service"),
    # Generate streams for as long as the music lasts; what a caller waits for is the
    # first note: 20 / 51 ms p50 at 1 / 16 in flight, so 1 s.
    LatencySli("first_event", "1.0", "cadenza_generate_time_to_first_event_seconds", "",
               "job", (("grpc_service", GENERATE),)),
)


def _requests(window: str, codes: str = "") -> str:
    matchers = SERVICES + (f', grpc_code=~"{codes}"' if codes else "")
    return f"sum by (job, grpc_service) (rate(grpc_server_handled_total{{{matchers}}}[{window}]))"


def _request_rule(window: str) -> dict[str, Any]:
    return {"record": f"job_grpc_service:grpc_server_requests:rate{window}",
            "expr": _requests(window)}


def _error_rule(window: str) -> dict[str, Any]:
    errors, total = _requests(window, "|".join(SERVER_ERROR_CODES)), _requests(window)
    # `or ... * 0` gives 0 rather than no series when nothing failed, for dashboards.
    return {"record": f"job_grpc_service:grpc_server_errors:ratio_rate{window}",
            "expr": f"(\n  {errors}\n  or\n  {total} * 0\n)\n/\n{total}\n"}


def _latency_rule(window: str, sli: LatencySli) -> dict[str, Any]:
    le = f'le="{sli.threshold_s}"'
    bucket = f"{sli.histogram}_bucket{{{_join(sli.selector, le)}}}"
    count = f"{sli.histogram}_count" + (f"{{{sli.selector}}}" if sli.selector else "")
    expr = (f"1 - (\n  sum by ({sli.by}) (rate({bucket}[{window}]))\n  /\n"
            f"  sum by ({sli.by}) (rate({count}[{window}]))\n)\n")
    labels = {"sli": sli.sli, "threshold_s": sli.threshold_s, **dict(sli.extra_labels)}
    return {"record": f"job_grpc_service:grpc_server_slow:ratio_rate{window}",
            "expr": expr, "labels": labels}


def _join(*matchers: str) -> str:
    return ", ".join(m for m in matchers if m)


@dataclass(frozen=True)
class Objective:
    """One SLO: its SLI series (a ratio of bad calls) and the share allowed to be bad."""

    name: str
    series: str  # recorded name without the window
    budget: float
    summary: str
    description: str


OBJECTIVES = (
    Objective(
        "ErrorBudget", "job_grpc_service:grpc_server_errors:ratio_rate", 0.001,
        "{{ $labels.job }}: {{ $labels.grpc_service }} is burning its 99.9% availability "
        "budget {speed}",
        "Server errors are {{ $value | humanizePercentage }} of calls over the last {long}: "
        "{burns}. Look at grpc_server_handled_total by grpc_method and grpc_code, then the "
        "service's log."),
    Objective(
        "LatencyBudget", "job_grpc_service:grpc_server_slow:ratio_rate", 0.01,
        "{{ $labels.job }}: {{ $labels.grpc_service }} {{ $labels.sli }} latency is burning "
        "its 99% budget {speed}",
        "{{ $value | humanizePercentage }} of {{ $labels.sli }} calls took longer than "
        "{{ $labels.threshold_s }} s over the last {long}: {burns}. Look at "
        "grpc_server_handling_seconds by grpc_method, the store query and inference "
        "histograms, and CPU."),
)

# The budget words for each severity's tiers.
_SPEED = {"page": ("fast", "BurnFast"), "ticket": ("slowly", "BurnSlow")}


def _alert(objective: Objective, severity: str) -> dict[str, Any]:
    tiers = [t for t in TIERS if t.severity == severity]
    clauses = [
        f"(\n  {objective.series}{t.long} > ({t.burn:g} * {objective.budget:g})\n  and\n"
        f"  {objective.series}{t.short} > ({t.burn:g} * {objective.budget:g})\n)"
        for t in tiers
    ]
    # $value is the long window's ratio of the first tier that holds.
    longs = " (or ".join(t.long for t in tiers) + ")" * (len(tiers) - 1)
    burns = " or ".join(f"over {t.burn:g}x the budget rate in {t.long} and {t.short}"
                        for t in tiers)
    speed, suffix = _SPEED[severity]
    name = f"Cadenza{objective.name}{suffix}"
    return {
        "alert": name,
        "expr": "\nor\n".join(clauses) + "\n",
        "labels": {"severity": severity},
        "annotations": {
            "summary": objective.summary.replace("{speed}", speed),
            "description": objective.description.replace("{long}", longs)
                                                .replace("{burns}", burns),
            "runbook_url": f"{RUNBOOK}#{name.lower()}",
        },
    }


def slo_groups() -> dict[str, Any]:
    """The recording rules of every SLI and its burn rates, as a rule file."""
    # One group: Prometheus evaluates a group's rules in order, so the alerts always read
    # the SLIs of the same evaluation (across groups they could be one interval behind).
    rules: list[dict[str, Any]] = []
    for window in WINDOWS:
        rules += [_request_rule(window), _error_rule(window)]
        rules += [_latency_rule(window, sli) for sli in LATENCY_SLIS]
    rules += [_alert(o, severity) for o in OBJECTIVES for severity in _SPEED]
    return {"groups": [{"name": "cadenza-slo", "rules": rules}]}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line PromQL as literal blocks so the file reads like hand-written."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)

HEADER = """\
# Generated by slo_rules.py in this folder: edit that, then run it.
#
# SLOs, per (job, grpc_service), over 30 days:
#   availability  99.9% of calls end without a server error (which codes: slo_rules.py)
#   latency       99% of unary calls under 250 ms (recommend: 500 ms; TrainModel and
#                 client streams left out); Generate: 99% of first note events within 1 s
# Burn-rate tiers (Google SRE workbook, ch. 5): page at 14.4x over 1h and 5m or 6x over 6h
# and 30m; ticket at 3x over 1d and 2h or 1x over 3d and 6h.
# No particular `job` values are needed: a service's calls are told apart by grpc_service,
# and by job because the gateway counts the calls it forwards under the backend's
# grpc_service too (so each backend has two SLIs: its own and as seen at the gateway).
"""


def render_slo() -> str:
    """slo.yml's text."""
    return HEADER + yaml.dump(slo_groups(), Dumper=_Dumper, sort_keys=False, width=1000)


def prometheus_rule(namespace: str) -> str:
    """Every rule file here as one PrometheusRule (Prometheus Operator)."""
    groups = []
    for path in sorted(HERE.glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cadenza-alerts", "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "cadenza"}},
        "spec": {"groups": groups},
    }
    return yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=1000)


def main() -> None:
    """Writes slo.yml, or prints the PrometheusRule with --prometheus-rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus-rule", action="store_true",
                        help="print every rule file as one PrometheusRule instead")
    parser.add_argument("--namespace", default="cadenza")
    args = parser.parse_args()
    if args.prometheus_rule:
        sys.stdout.write(prometheus_rule(args.namespace))
    else:
        SLO_FILE.write_text(render_slo())


if __name__ == "__main__":
    main()
