"""Gateway overhead: a unary call straight to a service vs the same call through the gateway."""

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


async def _measure(address: str, in_flight: int) -> Latency:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        request = retrieval_pb2.ListFeatureGroupsRequest()
        return await load(lambda: stub.ListFeatureGroups(request, timeout=10), in_flight,
                          DURATION_S)


def run() -> list[Row]:
    """Measures unary calls direct to retrieval and through the gateway, at each concurrency."""
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Mesh(pathlib.Path(tmp), Endpoints.free())
        mesh.start()
        try:
            results = {}
            for in_flight in IN_FLIGHT:
                results[in_flight] = (
                    asyncio.run(_measure(mesh.endpoints.address("gateway"), in_flight)),
                    asyncio.run(_measure(mesh.endpoints.address("retrieval"), in_flight)),
                )
        finally:
            mesh.stop()
    rows = []
    for in_flight, (via, direct) in results.items():
        setting = f"{in_flight} in flight"
        rows += [
            Row("ListFeatureGroups p50", setting, f"{via.p50_ms:.2f} ms",
                f"{direct.p50_ms:.2f} ms", f"{via.p50_ms / direct.p50_ms:.2f}x",
                f"+{via.p50_ms - direct.p50_ms:.2f} ms added by the gateway"),
            Row("ListFeatureGroups p99", setting, f"{via.p99_ms:.2f} ms",
                f"{direct.p99_ms:.2f} ms", f"{via.p99_ms / direct.p99_ms:.2f}x"),
            Row("ListFeatureGroups throughput", setting, f"{via.calls_per_s:.0f} calls/s",
                f"{direct.calls_per_s:.0f} calls/s",
                f"{via.calls_per_s / direct.calls_per_s:.2f}",
                f"{via.calls + direct.calls} calls over {2 * DURATION_S:.0f} s"),
        ]
    print_table("Gateway overhead (ours: through the gateway; reference: direct to retrieval)",
                rows, "via gateway", "direct")
    return rows
