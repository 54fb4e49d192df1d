"""`cadenza health`: is the gateway up, and is every backend behind it SERVING?"""

from __future__ import annotations

import argparse
import json
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cadenza.cli.connection import Connection
from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `health` command."""
    parser = subparsers.add_parser("health", parents=[common],
                                   help="health of the gateway and each backend")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conn: Connection) -> int:
    """Exit code 0 when everything is SERVING, 1 otherwise."""
    health = health_pb2_grpc.HealthStub(conn.channel)
    try:
        gateway = health.Check(health_pb2.HealthCheckRequest(
            service="cadenza.gateway.v1.GatewayService"), timeout=conn.timeout_s)
        mesh = gateway_pb2_grpc.GatewayServiceStub(conn.channel).CheckMesh(
            gateway_pb2.CheckMeshRequest(), metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        unreachable: dict[str, Any] = {
            "gateway": {"address": args.target, "status": "UNREACHABLE",
                        "detail": f"{error.code().name}: {error.details()}"},
            "backends": []}
        _print(unreachable, args.json)
        return 1
    report: dict[str, Any] = {
        "gateway": {"address": args.target,
                    "status": health_pb2.HealthCheckResponse.ServingStatus.Name(gateway.status),
                    "detail": ""},
        "backends": [
            {"name": b.name, "address": b.address, "service": b.service,
             "status": gateway_pb2.ServingStatus.Name(b.status).removeprefix("SERVING_STATUS_"),
             "check_latency_ms": round(b.check_latency_ms, 3), "detail": b.detail}
            for b in mesh.backends
        ],
    }
    _print(report, args.json)
    ok = report["gateway"]["status"] == "SERVING" and all(
        b["status"] == "SERVING" for b in report["backends"])
    return 0 if ok else 1


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    g = report["gateway"]
    print(f"{'gateway':<10} {g['status']:<12} {g['address']:<22} {g['detail']}")
    for b in report["backends"]:
        latency = f"{b['check_latency_ms']:.1f} ms"
        print(f"{b['name']:<10} {b['status']:<12} {b['address']:<22} {latency:>9}  "
              f"{b['detail']}")
