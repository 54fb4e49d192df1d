"""Edge overhead: a unary call straight to a service vs the same call through Envoy and
through the gateway's own port (its Python forwarder).

Three meshes: one open (no keys: Envoy asks no one before routing; usage is settled from
Envoy's access log), and two with keys, where every call pays authentication (a hashed
key looked up in the store), a requests-per-minute quota too large to refuse anything,
and a usage record written durably before the call goes ahead (group commit), settled
after: once on the embedded defaults (SQLite, in-process counters) and once on the
servers replicas share (PostgreSQL, Redis). Through Envoy that is ext_authz, one round
trip to the gateway per call. Calls are plaintext, so TLS cost is not in these figures.
"""

from __future__ import annotations

import asyncio
import pathlib
import tempfile
import time

import grpc
import grpc.aio

from bench.harness import Latency, Row, load, print_table
from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.caller import Caller
from gateway.metering import Metering, UsageWriter, new_call_id
from gateway.store.sql import open_store
from tests.support.postgres import Postgres
from tests.support.redis import Redis
from tools.devmesh import Endpoints, Mesh

DURATION_S = 4.0
IN_FLIGHT = (1, 16)


def _tenant_key(mesh: Mesh) -> str:
    """A key of a tenant whose quota never refuses, made with the mesh's admin key."""
    admin = (("authorization", f"Bearer {mesh.admin_key}"),)
    with grpc.insecure_channel(mesh.endpoints.address("gateway")) as channel:
        stub = gateway_pb2_grpc.AdminServiceStub(channel)
        stub.CreateTenant(gateway_pb2.CreateTenantRequest(name="bench", quotas=[
            gateway_pb2.Quota(model="*", requests_per_minute=10**9)]), metadata=admin,
            timeout=10)
        reply = stub.CreateKey(gateway_pb2.CreateKeyRequest(tenant="bench",
                                                            scopes=["search"]),
                               metadata=admin, timeout=10)
    return reply.secret


async def _measure(address: str, in_flight: int, key: str = "") -> Latency:
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = retrieval_pb2.ListFeatureGroupsRequest()
        return await load(lambda: stub.ListFeatureGroups(request, timeout=10,
                                                         metadata=metadata),
                          in_flight, DURATION_S)


def _paths(env: dict[str, str], keys: bool) -> dict[int, dict[str, Latency]]:
    """Latency per in-flight count and path, on one mesh."""
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Mesh(pathlib.Path(tmp), Endpoints.free(), env=dict(env), keys=keys)
        mesh.start()
        try:
            key = _tenant_key(mesh) if keys else ""
            ep = mesh.endpoints
            return {n: {"direct": asyncio.run(_measure(ep.address("retrieval"), n)),
                        "envoy": asyncio.run(_measure(ep.public, n, key)),
                        "forwarder": asyncio.run(_measure(ep.address("gateway"), n, key))}
                    for n in IN_FLIGHT}
        finally:
            mesh.stop()


async def _write_rate(url: str, writers: int) -> float:
    """Usage records written durably per second by `writers` calls reserving at once."""
    store = await open_store(url)
    writer = UsageWriter(store)
    writer.start()
    metering = Metering(writer)
    caller = Caller("bench", "key_bench", frozenset({"search"}))
    written = 0
    stop = time.perf_counter() + DURATION_S / 2

    async def reserve() -> None:
        nonlocal written
        while time.perf_counter() < stop:
            await metering.reserve(metering.record(caller, new_call_id(), "/b/M", "m",
                                                   "requests"))
            written += 1

    started = time.perf_counter()
    await asyncio.gather(*(reserve() for _ in range(writers)))
    rate = written / (time.perf_counter() - started)
    await writer.close()
    await store.close()
    return rate


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
    open_mesh = _paths({}, keys=False)
    embedded = _paths({}, keys=True)
    redis, postgres = Redis(), Postgres()
    try:
        shared = _paths({"REDIS_URL": redis.url,
                         "DATABASE_URL": postgres.database_url("bench")}, keys=True)
        with tempfile.TemporaryDirectory() as tmp:
            rates = {(name, n): asyncio.run(_write_rate(url, n))
                     for name, url in (("SQLite", str(pathlib.Path(tmp) / "u.db")),
                                       ("PostgreSQL", postgres.database_url("rate")))
                     for n in IN_FLIGHT}
    finally:
        redis.remove()
        postgres.remove()
    meshes = (("off", open_mesh), ("SQLite+memory", embedded),
              ("PostgreSQL+Redis", shared))
    rows = []
    for n in IN_FLIGHT:
        setting = f"{n} in flight"
        for path, label in (("envoy", "Envoy"), ("forwarder", "gateway port")):
            for name, mesh in meshes:
                rows += _rows(f"{label}, auth+quota+metering {name}", setting,
                              mesh[n][path], mesh[n]["direct"])
    for (name, n), rate in rates.items():
        rows.append(Row(f"usage records written durably, {name}", f"{n} in flight",
                        f"{rate:.0f} records/s", "-", "-"))
    print_table("Edge overhead on ListFeatureGroups (ours: through the public path; "
                "reference: direct to retrieval, same mesh, same run)",
                rows, "via public path", "direct")
    return rows
