"""Grafana dashboards as code: writes deploy/grafana/dashboards/*.json.

`python deploy/grafana/generate_dashboards.py` (the JSON is committed; a test checks it
equals this output and runs every panel's PromQL against a real Prometheus).

One overview (per service: up, rate, error ratios, p50/p95/p99, generation saturation) and
one dashboard per process: rate, errors and duration per method from the standard gRPC
metrics, then that process's domain metrics; and one for the edge (Envoy's own stats,
scraped from its admin port). Plain dicts: grafanalib would be one more dependency for a
few JSON shapes. Job names are cadenza-<process> and cadenza-edge (tools/observe.py).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39  # Grafana 10.4 and 11
RATE = "[$__rate_interval]"
# Codes that mean the server failed (what the SLOs count) and those that are the caller's.
SERVER_CODES = "UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED|UNIMPLEMENTED"
CALLER_CODES = ("INVALID_ARGUMENT|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|UNAUTHENTICATED|"
                "RESOURCE_EXHAUSTED|FAILED_PRECONDITION|OUT_OF_RANGE|ABORTED|CANCELLED")
PROCESSES = ("gateway", "retrieval", "recommend", "generate")
Panel = dict[str, Any]


def target(expr: str, legend: str = "") -> dict[str, str]:
    """A PromQL query target with its legend."""
    return {"expr": expr, "legendFormat": legend or "__auto"}


def panel(title: str, targets: list[dict[str, str]], unit: str = "short",
          description: str = "", kind: str = "timeseries") -> Panel:
    """A time-series panel."""
    return {"type": kind, "title": title, "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]}


def rate(metric: str, selector: str, by: str) -> str:
    """Per-second rate of a counter, summed by the given labels."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}{RATE}))"


def ratio(metric: str, selector: str, bad: str, by: str) -> str:
    """Bad calls over all calls; 0 (not "no data") when there were calls but none bad."""
    total = rate(metric, selector, by)
    errors = rate(metric, selector + f',grpc_code=~"{bad}"', by)
    return f"({errors} or {total} * 0) / {total}"


def quantiles(bucket: str, selector: str, by: str, legend: str,
              levels: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[dict[str, str]]:
    """Targets for histogram quantiles of a bucket series."""
    group = f"{by}, le" if by else "le"
    return [target(f"histogram_quantile({q:g}, {rate(bucket, selector, group)})",
                   f"{legend} p{round(q * 100)}".strip()) for q in levels]


def mean(histogram: str, selector: str, by: str) -> str:
    """Mean of a histogram: rate of its sum over rate of its count."""
    return f"{rate(histogram + '_sum', selector, by)} / {rate(histogram + '_count', selector, by)}"


def grpc_panels(selector: str, by: str, legend: str) -> list[Panel]:
    """Rate, errors and duration from the standard gRPC server metrics, split `by`."""
    handled = "grpc_server_handled_total"
    buckets = "grpc_server_handling_seconds_bucket"
    return [
        panel("Requests / s", [target(rate(handled, selector, by), legend)], "reqps"),
        panel("Server error ratio", [target(ratio(handled, selector, SERVER_CODES, by),
                                            legend)], "percentunit",
              f"Calls ending {SERVER_CODES.replace('|', ', ')}: what the SLOs count."),
        panel("Caller error ratio", [target(ratio(handled, selector, CALLER_CODES, by),
                                            legend)], "percentunit",
              "Calls refused as the caller's doing: bad request, not found, no key, "
              "quota, cancelled."),
        panel("Latency of unary calls", quantiles(buckets, f'{selector},grpc_type="unary"',
                                                  by, legend), "s"),
        panel("Duration of streams", quantiles(buckets, f'{selector},grpc_type!="unary"',
                                               by, legend), "s",
              "Whole streams (uploads, event batches, generations): long by design."),
    ]


def template(name: str, query: str, all_value: str) -> dict[str, Any]:
    """A dashboard template variable from a label-values query."""
    return {"name": name, "label": name, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": f"{name}-values"},
            "definition": query, "refresh": 2, "multi": True, "includeAll": True,
            "allValue": all_value, "current": {"text": "All", "value": "$__all"},
            "sort": 1}


def dashboard(uid: str, title: str, panels: list[Panel],
              variable: dict[str, Any]) -> dict[str, Any]:
    """A dashboard with its panels laid out two to a row."""
    width, height = 12, 8
    placed = [dict(p, id=i + 1, gridPos={"x": (i % 2) * width, "y": (i // 2) * height,
                                         "w": width, "h": height})
              for i, p in enumerate(panels)]
    return {
        "uid": uid, "title": title, "tags": ["cadenza"], "editable": True,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "utc",
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}},
            variable,
        ]},
        "panels": placed,
    }


def overview() -> dict[str, Any]:
    """The mesh overview dashboard."""
    sel = 'job=~"$job"'
    return dashboard("cadenza-overview", "Cadenza / Overview", [
        panel("Up", [target(f'up{{{sel}}}', "{{job}} {{instance}}")], "none",
              "1 when Prometheus scraped the process.", "stat"),
        *grpc_panels(sel, "job", "{{job}}"),
        panel("Generation saturation", [target(
            f"sum by (job, instance) (cadenza_generate_in_flight{{{sel}}}) / "
            f"sum by (job, instance) (cadenza_generate_capacity{{{sel}}})",
            "{{instance}}")], "percentunit",
              "Generations running over the most each process runs; at 100 % new ones "
              "get RESOURCE_EXHAUSTED."),
        panel("Gateway errors per backend", [target(
            f'sum by (backend, grpc_code) (rate(cadenza_gateway_calls_total'
            f'{{{sel},grpc_code!="OK"}}{RATE}))', "{{backend}} {{grpc_code}}")], "reqps"),
        panel("Catalog size", [target(f"max(cadenza_retrieval_catalog_tracks{{{sel}}})",
                                        "tracks")], "none", kind="stat"),
        panel("Recommendation model age", [target(
            f"time() - max(cadenza_recommend_model_published_timestamp_seconds{{{sel}}})",
            "age")], "s", "Since the serving model was published: training stopped if it "
                          "keeps growing.", "stat"),
    ], template("job", 'label_values(up{job=~"cadenza-.+"}, job)', "cadenza-.+"))


def gateway_panels(sel: str) -> list[Panel]:
    """The gateway's panels."""
    calls = "cadenza_gateway_calls_total"
    return [
        panel("Calls per backend and code", [target(
            rate(calls, sel, "backend, grpc_code"), "{{backend}} {{grpc_code}}")], "reqps"),
        panel("Backend error ratio", [target(
            ratio(calls, sel, f"{SERVER_CODES}|{CALLER_CODES}", "backend"), "{{backend}}")],
              "percentunit", "Every non-OK code a backend returned through the gateway."),
        panel("Calls per API key", [target(rate(calls, sel, "principal"), "{{principal}}")],
              "reqps"),
        panel("Bytes per backend", [target(rate("cadenza_gateway_bytes_total", sel,
                                                "backend, direction"),
                                           "{{backend}} {{direction}}")], "Bps"),
        panel("Refused at the edge", [target(rate("cadenza_gateway_rejected_total", sel,
                                                  "principal, grpc_code"),
                                             "{{principal}} {{grpc_code}}")], "reqps",
              "No valid API key (UNAUTHENTICATED) or over the key's quota "
              "(RESOURCE_EXHAUSTED). Empty while access control is off."),
        panel("Long-running operations", [
            target(f"sum by (instance) (cadenza_gateway_operations_running{{{sel}}})",
                   "running {{instance}}"),
            target(rate("cadenza_gateway_operations_finished_total", sel, "state"),
                   "finished {{state}}")], "short",
              "Operations each replica runs now, and those finishing per second by state "
              "(succeeded, failed, cancelled)."),
    ]


def retrieval_panels(sel: str) -> list[Panel]:
    """Retrieval's panels."""
    return [
        panel("Catalog size", [target(f"max(cadenza_retrieval_catalog_tracks{{{sel}}})",
                                        "tracks")], "none"),
        panel("Tracks ingested / s", [target(rate("cadenza_retrieval_tracks_ingested_total",
                                                  sel, "content"), "{{content}}")], "ops"),
        panel("Ingest time", quantiles("cadenza_retrieval_ingest_seconds_bucket", sel, "",
                                       "ingest", (0.5, 0.95)), "s"),
        panel("Feature extraction time", quantiles(
            "cadenza_retrieval_feature_extraction_seconds_bucket", sel, "", "features",
            (0.5, 0.95)), "s"),
        panel("Store query time p95 per mode", quantiles(
            "cadenza_retrieval_query_seconds_bucket", sel, "mode", "{{mode}}", (0.95,)), "s"),
        panel("Store queries / s per mode", [target(rate(
            "cadenza_retrieval_query_seconds_count", sel, "mode"), "{{mode}}")], "ops"),
    ]


def recommend_panels(sel: str) -> list[Panel]:
    """Recommend's panels."""
    return [
        panel("Events / s by outcome", [target(rate("cadenza_recommend_events_total", sel,
                                                    "outcome"), "{{outcome}}")], "ops"),
        panel("Model quality (held out)", [target(
            f'max by (algorithm, metric) (cadenza_recommend_model_quality'
            f'{{{sel},metric!="users"}})', "{{algorithm}} {{metric}}")], "percentunit",
              "Recall@10 and nDCG@10 of the serving model's algorithm on a hold-out "
              "measured at training time."),
        panel("Model age", [target(
            f"time() - max(cadenza_recommend_model_published_timestamp_seconds{{{sel}}})",
            "age")], "s"),
        panel("Training runs in the last hour", [target(
            f"sum by (algorithm, outcome) (increase(cadenza_recommend_training_runs_total"
            f"{{{sel}}}[1h]))", "{{algorithm}} {{outcome}}")], "none"),
        panel("Training duration (mean, last hour)", [target(
            f"sum by (algorithm) (rate(cadenza_recommend_training_seconds_sum{{{sel}}}[1h]))"
            f" / sum by (algorithm) (rate(cadenza_recommend_training_seconds_count"
            f"{{{sel}}}[1h]))", "{{algorithm}}")], "s"),
        panel("Candidate time p95 per source", quantiles(
            "cadenza_recommend_source_seconds_bucket", sel, "source", "{{source}}", (0.95,)),
              "s"),
        panel("Lists and histories from memory", [
            target(f'sum(rate(cadenza_recommend_list_cache_total{{{sel},result="hit"}}[5m]))'
                   f" / sum(rate(cadenza_recommend_list_cache_total{{{sel}}}[5m]))",
                   "lists"),
            target(f'sum(rate(cadenza_recommend_history_cache_total{{{sel},result="hit"}}'
                   f"[5m])) / sum(rate(cadenza_recommend_history_cache_total{{{sel}}}[5m]))",
                   "engagements")],
              "percentunit", "Lists: Recommend calls answered with a list computed before for "
              "the same request, engagements, model version and catalogue revision. "
              "Engagements: reads of a user's history that needed no event-store read."),
        panel("Lists computed ahead", [
            target(f"sum(rate(cadenza_recommend_warmed_lists_total{{{sel}}}[5m]))",
                   "after a publish or catalogue change"),
            target(f"sum(rate(cadenza_recommend_refreshed_lists_total{{{sel}}}[5m]))",
                   "after the user's own events")],
              "ops", "Default lists computed before the user asks (services/recommend/"
              "warm.py), so the next call is a cache hit."),
        panel("Catalogue copy age and size", [
            target(f"time() - max(cadenza_recommend_content_copied_timestamp_seconds{{{sel}}})",
                   "age (s)"),
            target(f"max(cadenza_recommend_content_tracks{{{sel}}})", "tracks")], "none",
              "The content signal's copy of retrieval's vectors: seconds since it last "
              "matched retrieval's revision (checked every CONTENT_REFRESH_S), and its size."),
    ]


def generate_panels(sel: str) -> list[Panel]:
    """Generate's panels."""
    by = "backend, model"
    return [
        panel("Saturation", [target(
            f"sum by (instance) (cadenza_generate_in_flight{{{sel}}}) / "
            f"sum by (instance) (cadenza_generate_capacity{{{sel}}})", "{{instance}}")],
              "percentunit"),
        panel("In flight and queued", [
            target(f"sum by (model) (cadenza_generate_in_flight{{{sel}}})", "{{model}} running"),
            target(f"sum by (model) (cadenza_generate_queue_depth{{{sel}}})",
                   "{{model}} queued steps")], "none"),
        panel("Inference time per backend and model", quantiles(
            "cadenza_generate_inference_seconds_bucket", sel, by, "{{backend}} {{model}}",
            (0.5, 0.95)), "s"),
        panel("Batch size (mean)", [target(mean("cadenza_generate_batch_size", sel, by),
                                           "{{backend}} {{model}}")], "none"),
        panel("Tokens / s", [target(rate("cadenza_generate_tokens_total", sel, by),
                                    "{{backend}} {{model}}")], "ops"),
        panel("Generations / s", [target(rate("cadenza_generate_generations_total", sel,
                                              "model, mode, outcome"),
                                         "{{model}} {{mode}} {{outcome}}")], "ops"),
        panel("Time to first note", quantiles(
            "cadenza_generate_time_to_first_event_seconds_bucket", sel, "model", "{{model}}",
            (0.5, 0.95)), "s"),
        panel("Music seconds per second", [target(rate("cadenza_generate_music_seconds_total",
                                                       sel, "model"), "{{model}}")], "none",
              "Above 1: faster than real time."),
    ]


def edge() -> dict[str, Any]:
    """The edge dashboard: Envoy's view of the public listener and of each backend cluster.

    Counters carry no _total suffix in Envoy's exposition; its histograms count
    milliseconds. Envoy sees HTTP statuses, not gRPC codes: a gRPC error is a 200 with
    grpc-status, so 5xx here are Envoy's own refusals (no healthy backend, reset,
    overflow) or a backend's transport failure; the gRPC codes are on the other dashboards.
    """
    sel = 'job="cadenza-edge",instance=~"$instance"'
    cluster = "envoy_cluster_name"
    legend = "{{envoy_cluster_name}}"
    public = f'{sel},envoy_http_conn_manager_prefix="public"'
    five_xx = f'{sel},envoy_response_code_class="5"'

    def refused(metric: str, selector: str, what: str) -> dict[str, str]:
        return target(f"sum(rate({metric}{{{selector}}}{RATE}))", what)

    return dashboard("cadenza-edge", "Cadenza / Edge (Envoy)", [
        panel("Up", [target(f"up{{{sel}}}", "{{instance}}")], "none", kind="stat"),
        panel("Requests / s per backend", [target(
            rate("envoy_cluster_upstream_rq_completed", sel, cluster), legend)], "reqps",
              "Calls Envoy finished with each backend cluster (the gateway's cluster carries "
              "GatewayService, health and reflection)."),
        panel("Backend latency", quantiles("envoy_cluster_upstream_rq_time_bucket", sel,
                                           cluster, legend, (0.5, 0.99)), "ms",
              "Until the backend's last byte: streams count whole, long by design."),
        panel("Public latency", quantiles("envoy_http_downstream_rq_time_bucket", public, "",
                                          "public", (0.5, 0.99)), "ms",
              "Whole calls on the public listener, as the caller sees them (TLS and "
              "transcoding included)."),
        # 0, not "no data", for a cluster with calls and no 5xx (the series appears
        # with the first one).
        panel("Backend 5xx / s", [target(
            f"{rate('envoy_cluster_upstream_rq_xx', five_xx, cluster)} or "
            f"{rate('envoy_cluster_upstream_rq_completed', sel, cluster)} * 0", legend)],
              "reqps", "HTTP 5xx per cluster: no healthy host, connection failure, reset or "
                       "overflow (gRPC errors travel as 200 with grpc-status)."),
        panel("Healthy backends", [
            target(f"min by ({cluster}) (envoy_cluster_membership_healthy{{{sel}}})",
                   f"{legend} healthy"),
            target(f"max by ({cluster}) (envoy_cluster_membership_total{{{sel}}})",
                   f"{legend} known")], "none",
              "Hosts passing Envoy's gRPC health checks (the fewest any edge sees), against "
              "the hosts DNS names (one per ready pod of a headless Service)."),
        panel("Retries / s per backend", [target(
            rate("envoy_cluster_upstream_rq_retry", sel, cluster), legend)], "reqps",
              "Idempotent calls retried on UNAVAILABLE or a reset; any call on a connect "
              "failure or refused stream."),
        panel("Outlier ejections", [target(
            f"sum by ({cluster}) (envoy_cluster_outlier_detection_ejections_active{{{sel}}})",
            legend)], "none",
              "Backend hosts out of rotation after 5 consecutive failures (back after 10 s "
              "and more each time), summed over the edges."),
        panel("Refused at the edge", [
            refused("envoy_http_ext_authz_denied", public, "denied by the gateway (ext_authz)"),
            refused("envoy_http_ext_authz_error", public, "gateway check failed (503)"),
        ], "reqps",
              "Keys, scopes and quotas are checked by the gateway (ext_authz) on every "
              "public call: denials are bad keys and calls over quota, errors mean the "
              "gateway did not answer."),
    ], template("instance", 'label_values(up{job="cadenza-edge"}, instance)', ".+"))


DOMAIN = {"gateway": gateway_panels, "retrieval": retrieval_panels,
          "recommend": recommend_panels, "generate": generate_panels}


def service(process: str) -> dict[str, Any]:
    """The dashboard of one process."""
    job = f"cadenza-{process}"
    sel = f'job="{job}",instance=~"$instance"'
    return dashboard(job, f"Cadenza / {process.capitalize()}", [
        panel("Up", [target(f"up{{{sel}}}", "{{instance}}")], "none", kind="stat"),
        *grpc_panels(sel, "grpc_method", "{{grpc_method}}"),
        *DOMAIN[process](sel),
    ], template("instance", f'label_values(up{{job="{job}"}}, instance)', ".+"))


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {"overview.json": overview(), "edge.json": edge(),
            **{f"{p}.json": service(p) for p in PROCESSES}}


def render(board: dict[str, Any]) -> str:
    """A dashboard as committed JSON text."""
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Writes every dashboard into deploy/grafana/dashboards/."""
    OUT.mkdir(exist_ok=True)
    for name, board in dashboards().items():
        (OUT / name).write_text(render(board))
        sys.stdout.write(f"wrote {OUT / name}\n")


if __name__ == "__main__":
    main()
