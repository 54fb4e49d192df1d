"""Watches each backend's health and mirrors it into the gateway's own health service."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.routes import Backend

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GATEWAY_SERVICE = "cadenza.gateway.v1.GatewayService"
_RETRY_S = 0.5


@dataclass
class Probe:
    """One health check's outcome."""

    backend: Backend
    serving: bool
    reachable: bool
    latency_ms: float
    detail: str


class MeshHealth:
    """Keeps '' SERVING only while every backend is SERVING; each backend's public service
    name reports that backend. The gateway's own service name reports the gateway alone
    (that is what a Kubernetes readiness probe should ask)."""

    def __init__(self, backends: tuple[Backend, ...],
                 channels: dict[str, grpc.aio.Channel]) -> None:
        self.backends = backends
        self._stubs = {b.name: health_pb2_grpc.HealthStub(channels[b.name]) for b in backends}
        self._serving = {b.name: False for b in backends}
        self._health: health.aio.HealthServicer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, health_servicer: health.aio.HealthServicer) -> None:
        """Starts watching every backend's health, mirrored into the gateway's own."""
        self._health = health_servicer
        for backend in self.backends:
            await self._publish(backend, False)
        self._tasks = [asyncio.create_task(self._watch(b)) for b in self.backends]

    async def stop(self) -> None:
        """Stops the watchers."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _publish(self, backend: Backend, serving: bool) -> None:
        if self._serving[backend.name] != serving:
            logger.info("backend %s is %s", backend.name, "SERVING" if serving else "DOWN")
        self._serving[backend.name] = serving
        assert self._health is not None
        await self._health.set(backend.service.full_name, SERVING if serving else NOT_SERVING)
        await self._health.set("", SERVING if all(self._serving.values()) else NOT_SERVING)

    async def _watch(self, backend: Backend) -> None:
        request = health_pb2.HealthCheckRequest(service=backend.service.full_name)
        while True:
            try:
                async for reply in self._stubs[backend.name].Watch(request):
                    await self._publish(backend, reply.status == SERVING)
            except grpc.aio.AioRpcError as error:
                logger.debug("health watch of %s ended: %s", backend.name, error.code())
            await self._publish(backend, False)
            await asyncio.sleep(_RETRY_S)

    async def probe(self, timeout_s: float = 2.0) -> list[Probe]:
        """Checks every backend now, in parallel."""
        return list(await asyncio.gather(*(self._probe(b, timeout_s) for b in self.backends)))

    async def _probe(self, backend: Backend, timeout_s: float) -> Probe:
        request = health_pb2.HealthCheckRequest(service=backend.service.full_name)
        started = time.perf_counter()
        try:
            reply = await self._stubs[backend.name].Check(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            latency_ms = (time.perf_counter() - started) * 1000
            reachable = error.code() not in (grpc.StatusCode.UNAVAILABLE,
                                             grpc.StatusCode.DEADLINE_EXCEEDED)
            return Probe(backend, False, reachable, latency_ms,
                         f"{error.code().name}: {error.details()}")
        latency_ms = (time.perf_counter() - started) * 1000
        serving = reply.status == SERVING
        detail = "" if serving else health_pb2.HealthCheckResponse.ServingStatus.Name(
            reply.status)
        return Probe(backend, serving, True, latency_ms, detail)
