"""Edge overhead: a unary call straight to a service vs the same call through Envoy (auth
and quotas off, then on) and through the gateway's Python forwarder (the old public path).

Three meshes: one open (no keys, no quota: Envoy calls no one before routing), and two
with an API key and a quota too large to refuse anything, so every call pays the key
check and a token bucket: once checked by Envoy itself (api_key_auth + local_ratelimit,
the local default) and once by the gateway over ext_authz (one Python round trip per
call; what shares quotas between edge replicas). Metering (Envoy's access log) is on in
all three. The calls are plaintext, so TLS cost is not in these figures.
"""

from __future__ import annotations

import asyncio
import pathlib
import tempfile

import grpc.aio

from bench.harness import Latency, Row, load, print_table
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tools.devmesh import Endpoints, Mesh

DURATION_S = 4.0
IN_FLIGHT = (1, 16)
KEY = "bench-secret-key-000001"
AUTH_ENV = {"CADENZA_GATEWAY_API_KEYS": f"bench={KEY}",
            "CADENZA_GATEWAY_QUOTA_CALLS_PER_S": "1000000",
            "CADENZA_GATEWAY_QUOTA_BURST": "1000000"}


async def _measure(address: str, in_flight: int, key: str = "") -> Latency:
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = retrieval_pb2.ListFeatureGroupsRequest()
        return await load(lambda: stub.ListFeatureGroups(request, timeout=10,
                                                         metadata=metadata),
                          in_flight, DURATION_S)


def _paths(env: dict[str, str], key: str) -> dict[int, dict[str, Latency]]:
    """Latency per in-flight count and path, on one mesh."""
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Mesh(pathlib.Path(tmp), Endpoints.free(), env=dict(env))
        mesh.start()
        try:
            ep = mesh.endpoints
            return {n: {"direct": asyncio.run(_measure(ep.address("retrieval"), n)),
                        "envoy": asyncio.run(_measure(ep.public, n, key)),
                        "forwarder": asyncio.run(_measure(ep.address("gateway"), n, key))}
                    for n in IN_FLIGHT}
        finally:
            mesh.stop()


def _rows(label: str, setting: str, via: Latency, direct: Latency) -> list[Row]:
    return [
        Row(f"{label} p50", setting, f"{via.p50_ms:.2f} ms", f"{direct.p50_ms:.2f} ms",
            f"{via.p50_ms / direct.p50_ms:.2f}x", f"+{via.p50_ms - direct.p50_ms:.2f} ms"),
        Row(f"{label} p99", setting, f"{via.p99_ms:.2f} ms", f"{direct.p99_ms:.2f} ms",
            f"{via.p99_ms / direct.p99_ms:.2f}x"),
        Row(f"{label} throughput", setting, f"{via.calls_per_s:.0f} calls/s",
            f"{direct.calls_per_s:.0f} calls/s", f"{via.calls_per_s / direct.calls_per_s:.2f}"),
    ]


def run() -> list[Row]:
    """Measures each public path against direct calls, at each concurrency."""
    open_mesh = _paths({}, "")
    auth_mesh = _paths(AUTH_ENV, KEY)
    authz_mesh = _paths({**AUTH_ENV, "CADENZA_EDGE_AUTHZ": "1"}, KEY)
    rows = []
    for n in IN_FLIGHT:
        setting = f"{n} in flight"
        rows += _rows("Envoy, auth+quota off", setting, open_mesh[n]["envoy"],
                      open_mesh[n]["direct"])
        rows += _rows("Envoy, auth+quota in Envoy", setting, auth_mesh[n]["envoy"],
                      auth_mesh[n]["direct"])
        rows += _rows("Envoy, auth+quota by ext_authz", setting, authz_mesh[n]["envoy"],
                      authz_mesh[n]["direct"])
        rows += _rows("Python forwarder, off", setting, open_mesh[n]["forwarder"],
                      open_mesh[n]["direct"])
        rows += _rows("Python forwarder, on", setting, auth_mesh[n]["forwarder"],
                      auth_mesh[n]["direct"])
    print_table("Edge overhead on ListFeatureGroups (ours: through the public path; "
                "reference: direct to retrieval, same mesh, same run)",
                rows, "via public path", "direct")
    return rows
