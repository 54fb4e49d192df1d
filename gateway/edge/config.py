"""Renders Envoy's bootstrap config from the edge settings and the public protos.

Routes, retries and deadlines are derived from the service descriptors, as the
gateway's own channels derive them (cadenza.kit.channels): which methods may be retried
is read from each method's `idempotency_level`, so the contract and the retry policy
cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from cadenza.gateway.v1 import gateway_pb2
from cadenza.kit.channels import is_idempotent
from cadenza.kit.usage import MODEL_KEY, UNITS_KEY
from gateway.edge.settings import EdgeSettings
from gateway.routes import Backend, backends

CONTROL = "gateway"  # the cluster of the gateway (control plane and GatewayService)
# Set by ext_authz on admitted calls, for the access log; stripped from callers' requests.
TENANT_HEADER = "x-cadenza-tenant"
KEY_HEADER = "x-cadenza-key"
CALL_ID_HEADER = "x-cadenza-call-id"
_HEALTH = "grpc.health.v1.Health"
_REFLECTION = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
# The gateway's own services: it authenticates their callers itself.
_GATEWAY_SERVICES = (gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"],
                     gateway_pb2.DESCRIPTOR.services_by_name["AdminService"],
                     operations_pb2.DESCRIPTOR.services_by_name["Operations"])
# gRPC statuses Envoy may retry for idempotent calls: the backend said it could not
# serve, or the stream was reset before an answer. Non-idempotent calls are retried only
# when the request never left Envoy (no connection, or a refused stream).
_RETRY_SAFE = "connect-failure,refused-stream"
_RETRY_IDEMPOTENT = f"{_RETRY_SAFE},unavailable,reset"
# Local replies for a backend Envoy could not reach name it, as the gateway's did.
_UNREACHABLE_FLAGS = ["UF", "UH", "URX", "UO", "NC"]
_TYPE = "@type"


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _address(address: str) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _grpc_cluster(name: str, address: str, settings: EdgeSettings,
                  health_service: str | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        # STRICT_DNS resolves names (Kubernetes Services) and takes IPs as they are.
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _address(address)}}]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                _TYPE: "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                       "HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    # Keepalive pings find dead backends on idle connections.
                    "connection_keepalive": {"interval": "30s", "timeout": "10s"},
                }},
            }},
        # The default breakers (1024 pending and active requests) would refuse a
        # burst of streaming calls long before the backends are full.
        "circuit_breakers": {"thresholds": [{"max_connections": 10_000,
                                              "max_pending_requests": 10_000,
                                              "max_requests": 10_000}]},
    }
    if health_service is not None:
        # A Python backend busy with a long CPU-bound call may answer a probe late, so a
        # backend is only marked down after three misses; Envoy's default panic
        # threshold still routes to it if every host of the cluster is marked down.
        cluster["health_checks"] = [{
            "timeout": "3s", "interval": "3s", "no_traffic_interval": "3s",
            "unhealthy_threshold": 3, "healthy_threshold": 1,
            "grpc_health_check": {"service_name": health_service},
        }]
        # Eject a backend that keeps failing (connect errors, resets, UNAVAILABLE) for a
        # while; health checks bring it back.
        cluster["outlier_detection"] = {
            "consecutive_5xx": 5, "consecutive_gateway_failure": 5,
            "interval": "5s", "base_ejection_time": "10s", "max_ejection_percent": 100,
        }
    if settings.upstream_ca_file and name != CONTROL:
        cluster["transport_socket"] = _upstream_tls(settings, address)
    return cluster


def _upstream_tls(settings: EdgeSettings, address: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "alpn_protocols": ["h2"],
        "validation_context": {"trusted_ca": {"filename": settings.upstream_ca_file}},
    }
    if settings.upstream_cert_file:
        common["tls_certificates"] = [{
            "certificate_chain": {"filename": settings.upstream_cert_file},
            "private_key": {"filename": settings.upstream_key_file}}]
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        _TYPE: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
               "UpstreamTlsContext",
        "common_tls_context": common, "sni": address.rpartition(":")[0]}}


def _method_route(service: ServiceDescriptor, method: MethodDescriptor, cluster: str,
                  settings: EdgeSettings) -> dict[str, Any]:
    streaming = method.client_streaming or method.server_streaming
    deadline_s = (settings.default_stream_deadline_s if streaming
                  else settings.default_unary_deadline_s)
    retry_on = (_RETRY_IDEMPOTENT if is_idempotent(method) and not streaming
                else _RETRY_SAFE)
    return {
        "match": {"path": f"/{service.full_name}/{method.name}"},
        "route": {
            "cluster": cluster,
            # The whole-call timeout is the caller's grpc-timeout (uncapped), else the
            # default deadline; Envoy's own 15 s route timeout is off.
            "timeout": "0s",
            "max_stream_duration": {"max_stream_duration": _duration(deadline_s),
                                    "grpc_timeout_header_max": "0s"},
            "retry_policy": {"retry_on": retry_on, "num_retries": 2,
                             "retry_back_off": {"base_interval": "0.05s",
                                                "max_interval": "0.5s"}},
        },
        # The backend enforces the same deadline when the caller set none.
        "request_headers_to_add": [{
            "header": {"key": "grpc-timeout", "value": f"{int(deadline_s)}S"},
            "append_action": "ADD_IF_ABSENT"}],
    }


_ACCESS_FILTERS = ("envoy.filters.http.ext_authz",)


def _open(route: dict[str, Any]) -> dict[str, Any]:
    """The route without key checks or quotas (probes, tooling, the gateway's own
    service, which authenticates its callers itself)."""
    route["typed_per_filter_config"] = {
        name: {_TYPE: "type.googleapis.com/envoy.config.route.v3.FilterConfig",
               "disabled": True, "is_optional": True}
        for name in _ACCESS_FILTERS}
    return route


def _routes(settings: EdgeSettings, public: tuple[Backend, ...]) -> list[dict[str, Any]]:
    routes = [_method_route(b.service, m, b.name, settings)
              for b in public for m in b.service.methods]
    # Unknown methods of a known service still reach it (it answers UNIMPLEMENTED).
    routes += [{"match": {"prefix": f"/{b.service.full_name}/"},
                "route": {"cluster": b.name, "timeout": "0s"}} for b in public]
    routes += [_open(_method_route(service, m, CONTROL, settings))
               for service in _GATEWAY_SERVICES for m in service.methods]
    for service in (_HEALTH, *_REFLECTION):
        routes.append(_open({"match": {"prefix": f"/{service}/"},
                             "route": {"cluster": CONTROL, "timeout": "0s"}}))
    return routes


def _http_filters(settings: EdgeSettings, public: tuple[Backend, ...]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [
        {"name": "envoy.filters.http.cors", "typed_config": {
            _TYPE: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
        {"name": "envoy.filters.http.grpc_web", "typed_config": {
            _TYPE: "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"}},
        {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": {
            _TYPE: "type.googleapis.com/envoy.extensions.filters.http."
                   "grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor": settings.descriptor_set,
            "services": [b.service.full_name for b in public]
            + [service.full_name for service in _GATEWAY_SERVICES],
            "print_options": {"preserve_proto_field_names": True,
                              "always_print_primitive_fields": False},
            # Errors come back as a JSON google.rpc.Status: code, message, details.
            "convert_grpc_status": True,
            "request_validation_options": {"reject_unknown_method": False,
                                           "reject_unknown_query_parameters": True},
            "max_request_body_size": settings.max_message_bytes,
            "max_response_body_size": settings.max_message_bytes,
        }},
    ]
    if settings.authz:
        filters.append({"name": "envoy.filters.http.ext_authz", "typed_config": {
            _TYPE: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {"envoy_grpc": {"cluster_name": CONTROL}, "timeout": "1s"},
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            # The check needs the key and nothing else: fewer bytes per call.
            "allowed_headers": {"patterns": [{"exact": "authorization"}]},
        }})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        _TYPE: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return filters


def _local_replies(settings: EdgeSettings) -> list[dict[str, Any]]:
    """Messages for Envoy's own refusals that say what to fix, as the gateway's do."""
    mappers: list[dict[str, Any]] = [{
        "filter": {"response_flag_filter": {"flags": _UNREACHABLE_FLAGS}},
        "body_format_override": {"text_format_source": {"inline_string":
            "%UPSTREAM_CLUSTER% backend is unavailable: %LOCAL_REPLY_BODY%"}},
    }]
    return mappers


def _access_log(settings: EdgeSettings) -> list[dict[str, Any]]:
    if not settings.metering:
        return []
    return [{"name": "envoy.access_loggers.http_grpc", "typed_config": {
        _TYPE: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3."
               "HttpGrpcAccessLogConfig",
        "common_config": {
            "log_name": "cadenza-usage",
            "grpc_service": {"envoy_grpc": {"cluster_name": CONTROL}},
            "transport_api_version": "V3",
            "buffer_flush_interval": _duration(settings.metering_flush_s),
            "buffer_size_bytes": 65536,
        },
        # The call id, tenant and key ext_authz attached settle the call's usage record.
        "additional_request_headers_to_log": [CALL_ID_HEADER, TENANT_HEADER, KEY_HEADER],
        # grpc-status is a trailer, or a header in a trailers-only reply (errors); the
        # backend reports the model and units it metered in trailers.
        "additional_response_headers_to_log": ["grpc-status"],
        "additional_response_trailers_to_log": ["grpc-status", MODEL_KEY, UNITS_KEY],
    }}]


def _cors(settings: EdgeSettings) -> dict[str, Any]:
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    match = ([{"safe_regex": {"regex": ".*"}}] if "*" in origins
             else [{"exact": o} for o in origins])
    return {"envoy.filters.http.cors": {
        _TYPE: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": match,
        "allow_methods": "GET, POST, PUT, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-grpc-web, x-user-agent, "
                         "grpc-timeout, x-request-id",
        "expose_headers": "grpc-status, grpc-message, grpc-status-details-bin, x-request-id, "
                          "x-cadenza-call-id, retry-after",
        "max_age": "86400",
    }}


def _listener(settings: EdgeSettings, public: tuple[Backend, ...]) -> dict[str, Any]:
    manager = {
        _TYPE: "type.googleapis.com/envoy.extensions.filters.network."
               "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "public",
        # HTTP/2 for gRPC, HTTP/1.1 for REST and gRPC-Web from browsers.
        "codec_type": "AUTO",
        "generate_request_id": True,
        "preserve_external_request_id": True,
        "always_set_request_id_in_response": True,
        "stream_idle_timeout": _duration(settings.default_stream_deadline_s),
        "http2_protocol_options": {"max_concurrent_streams": 1000},
        "route_config": {"name": "public", "virtual_hosts": [{
            "name": "cadenza", "domains": ["*"],
            "routes": _routes(settings, public),
            "typed_per_filter_config": _cors(settings),
        }]},
        "http_filters": _http_filters(settings, public),
        "access_log": _access_log(settings),
        "local_reply_config": {"mappers": _local_replies(settings)},
    }
    listener: dict[str, Any] = {
        "name": "public",
        "address": _address(f"{settings.host}:{settings.port}"),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": manager}]}],
    }
    if settings.tls_cert_file:
        listener["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls", "typed_config": {
                _TYPE: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                       "DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [{
                        "certificate_chain": {"filename": settings.tls_cert_file},
                        "private_key": {"filename": settings.tls_key_file}}],
                }}}
    return listener


def render(settings: EdgeSettings) -> dict[str, Any]:
    """Envoy's bootstrap config (a JSON-able dict) for these settings."""
    public = backends(settings)
    clusters = [_grpc_cluster(b.name, b.address, settings, b.service.full_name)
                for b in public]
    clusters.append(_grpc_cluster(CONTROL, settings.gateway_address, settings, None))
    return {
        "admin": {"address": _address(f"127.0.0.1:{settings.metrics_port}")
                  if settings.host == "127.0.0.1"
                  else _address(f"0.0.0.0:{settings.metrics_port}")},
        "static_resources": {"listeners": [_listener(settings, public)],
                             "clusters": clusters},
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {
            # Envoy's overload defaults for an edge proxy, as its docs recommend.
            "overload.global_downstream_max_connections": 50_000}}]},
    }


def write(settings: EdgeSettings, path: pathlib.Path) -> pathlib.Path:
    """Writes the rendered config to path (JSON, which Envoy reads as YAML)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(render(settings), indent=1) + "\n")
    return path


def main() -> None:
    """`python -m gateway.edge.config --out envoy.json`: render from the environment."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    write(EdgeSettings(), parser.parse_args().out)


if __name__ == "__main__":
    main()
