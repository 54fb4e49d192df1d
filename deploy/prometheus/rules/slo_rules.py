"""Writes slis.yml (the SLI recording rules) and wraps the rule files as a PrometheusRule.

The SLIs repeat the same three expressions over seven windows; writing them from one
table keeps the windows and thresholds from drifting apart. The alerts (alerts.yml) are
written by hand and read these series.

    python deploy/prometheus/rules/slo_rules.py                    # rewrite slis.yml
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
SLIS_FILE = HERE / "slis.yml"

# The windows of the multiwindow, multi-burn-rate alerts (Google SRE workbook, ch. 5):
# each long window is paired with a short one a twelfth of its length.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# Server-side failures: they burn the error budget. Everything else is either success or
# the caller's doing (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
# PERMISSION_DENIED, UNAUTHENTICATED, CANCELLED, RESOURCE_EXHAUSTED when generate sheds
# load: that one is watched by the saturation alerts instead). UNIMPLEMENTED only reaches
# these metrics from a registered method without a body, i.e. a deployment skew, so it
# counts; DEADLINE_EXCEEDED counts because the gateway sets the deadlines callers get.
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


def sli_groups() -> dict[str, Any]:
    groups = []
    for window in WINDOWS:
        rules = [_request_rule(window), _error_rule(window)]
        rules += [_latency_rule(window, sli) for sli in LATENCY_SLIS]
        groups.append({"name": f"cadenza-slis-{window}", "rules": rules})
    return {"groups": groups}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line PromQL as literal blocks so the file reads like hand-written."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)

HEADER = ("# Generated by slo_rules.py in this folder: edit that, then run it.\n"
          "# SLI recording rules per (job, grpc_service); alerts.yml reads them.\n")


def render_slis() -> str:
    return HEADER + yaml.dump(sli_groups(), Dumper=_Dumper, sort_keys=False, width=120)


def prometheus_rule(namespace: str) -> str:
    """Every rule file here as one PrometheusRule (Prometheus Operator)."""
    groups = []
    for path in sorted(HERE.glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cadenza-slos", "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "cadenza"}},
        "spec": {"groups": groups},
    }
    return yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus-rule", action="store_true",
                        help="print every rule file as one PrometheusRule instead")
    parser.add_argument("--namespace", default="cadenza")
    args = parser.parse_args()
    if args.prometheus_rule:
        sys.stdout.write(prometheus_rule(args.namespace))
    else:
        SLIS_FILE.write_text(render_slis())


if __name__ == "__main__":
    main()
