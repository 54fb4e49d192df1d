"""GatewayService: proto <-> domain for questions about the mesh itself."""

from __future__ import annotations

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.kit.interceptor import Context
from gateway.access import principal
from gateway.mesh_health import MeshHealth
from gateway.usage import UsageMeter


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """GatewayService: the mesh's health and the caller's usage."""
    def __init__(self, mesh: MeshHealth, usage: UsageMeter) -> None:
        self._mesh = mesh
        self._usage = usage

    async def CheckMesh(self, request: gateway_pb2.CheckMeshRequest,
                        context: Context) -> gateway_pb2.CheckMeshResponse:
        """Probes every backend now and reports each one's status."""
        probes = await self._mesh.probe()
        return gateway_pb2.CheckMeshResponse(
            gateway=gateway_pb2.SERVING_STATUS_SERVING,
            backends=[
                gateway_pb2.BackendStatus(
                    name=p.backend.name,
                    service=p.backend.service.full_name,
                    address=p.backend.address,
                    status=(gateway_pb2.SERVING_STATUS_SERVING if p.serving
                            else gateway_pb2.SERVING_STATUS_NOT_SERVING if p.reachable
                            else gateway_pb2.SERVING_STATUS_UNREACHABLE),
                    check_latency_ms=p.latency_ms,
                    detail=p.detail,
                )
                for p in probes
            ],
        )

    async def GetUsage(self, request: gateway_pb2.GetUsageRequest,
                       context: Context) -> gateway_pb2.GetUsageResponse:
        """The caller's calls since start, per method and status code."""
        name = principal.get()
        return gateway_pb2.GetUsageResponse(
            principal=name,
            methods=[
                gateway_pb2.MethodUsage(method=method, code=code, calls=t.calls,
                                        request_bytes=t.request_bytes,
                                        response_bytes=t.response_bytes)
                for (method, code), t in sorted(self._usage.totals(name).items())
            ],
        )
