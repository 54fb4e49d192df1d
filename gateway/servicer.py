"""GatewayService: proto <-> domain for the mesh, usage, the model catalogue and
starting operations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import grpc.aio
from google.longrunning import operations_pb2

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.kit.errors import InvalidArgument, NotFound, PermissionDenied
from cadenza.kit.interceptor import Context
from gateway.caller import caller
from gateway.catalog import build_catalog, to_proto
from gateway.mesh_health import MeshHealth
from gateway.operations.servicer import Operations
from gateway.quota.policy import QuotaPolicy
from gateway.store import Store

_GROUPS = {gateway_pb2.USAGE_GROUP_MODEL: "model", gateway_pb2.USAGE_GROUP_DAY: "day",
           gateway_pb2.USAGE_GROUP_METHOD: "method", gateway_pb2.USAGE_GROUP_KEY: "key_id",
           gateway_pb2.USAGE_GROUP_CODE: "code"}


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """GatewayService: the mesh's health, usage and models."""

    def __init__(self, mesh: MeshHealth, store: Store, policy: QuotaPolicy,
                 channels: Mapping[str, grpc.aio.Channel], operations: Operations) -> None:
        self._mesh = mesh
        self._operations = operations
        self._store = store
        self._policy = policy
        self._channels = channels

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
        """The tenant's usage records from the store, summed per group."""
        who = caller.get()
        tenant = request.tenant or who.tenant
        if tenant != who.tenant:
            if not who.admin:
                raise PermissionDenied(
                    "another tenant's usage needs a key with the 'admin' scope")
            if await self._store.get_tenant(tenant) is None:
                raise NotFound(f"no tenant named {tenant!r}")
        start, end, groups = usage_query(request)
        rows = await self._store.usage(tenant, start, end, groups)
        return gateway_pb2.GetUsageResponse(tenant=tenant, rows=[
            gateway_pb2.UsageRow(model=r.model, day=r.day, method=r.method, key_id=r.key_id,
                                 code=r.code, calls=r.calls, units=r.units, unit=r.unit,
                                 request_bytes=r.request_bytes,
                                 response_bytes=r.response_bytes, latency_ms=r.latency_ms)
            for r in rows])

    async def ListModels(self, request: gateway_pb2.ListModelsRequest,
                         context: Context) -> gateway_pb2.ListModelsResponse:
        """Every model of every service, with the caller's quota and use today."""
        who = caller.get()
        tenant = await self._store.get_tenant(who.tenant)
        entries = await build_catalog(self._channels)
        models = []
        for entry in entries:
            if request.modality and entry.modality != request.modality:
                continue
            quota = tenant_quota(tenant.quotas if tenant else (), entry.name)
            used = await self._policy.usage_today(who.tenant, entry.name)
            models.append(to_proto(entry, quota, used))
        return gateway_pb2.ListModelsResponse(models=models)

    async def StartOperation(self, request: gateway_pb2.StartOperationRequest,
                             context: Context) -> operations_pb2.Operation:
        """Starts the calls as a long-running operation and returns it at once."""
        return await self._operations.start(request, context)


def usage_query(request: gateway_pb2.GetUsageRequest
                ) -> tuple[datetime | None, datetime | None, list[str]]:
    """The time range and groups asked for, or InvalidArgument naming the bad field."""
    times: list[datetime | None] = []
    for name in ("start_time", "end_time"):
        if not request.HasField(name):
            times.append(None)
            continue
        try:
            times.append(getattr(request, name).ToDatetime(tzinfo=UTC))
        except ValueError as error:
            raise InvalidArgument(name, f"not a valid timestamp ({error}); use RFC 3339 "
                                  "times between years 1 and 9999") from error
    if times[0] is not None and times[1] is not None and times[1] <= times[0]:
        raise InvalidArgument("end_time", "must be after start_time")
    groups = []
    for i, group in enumerate(request.group_by):
        if group not in _GROUPS:
            raise InvalidArgument(f"group_by[{i}]", f"{group}: use one of "
                                  f"{', '.join(gateway_pb2.UsageGroup.Name(g) for g in _GROUPS)}")
        groups.append(_GROUPS[group])
    return times[0], times[1], list(dict.fromkeys(groups)) or ["model", "day"]


def tenant_quota(quotas: object, model: str) -> gateway_pb2.Quota:
    """The tenant's quota for the model: its own, else its "*" default, else none."""
    chosen = None
    for quota in quotas:  # type: ignore[attr-defined]
        if quota.model == model:
            chosen = quota
            break
        if quota.model == "*":
            chosen = quota
    if chosen is None:
        return gateway_pb2.Quota(model=model)
    return gateway_pb2.Quota(model=chosen.model, requests_per_minute=chosen.requests_per_minute,
                             units_per_day=chosen.units_per_day)


