"""Wires the gateway: forwarders per backend, mesh health, usage, GatewayService."""

from __future__ import annotations

import grpc.aio

from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.kit.server import App, Binding, RunningServer
from gateway.forward import Forwarder
from gateway.mesh_health import GATEWAY_SERVICE, SERVING, MeshHealth
from gateway.routes import backends
from gateway.servicer import GatewayServicer
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter


async def build_gateway(settings: GatewaySettings) -> App:
    """The gateway's servicers and forwarders, wired to the settings' backends."""
    usage = UsageMeter()
    forwarders = [Forwarder(b, settings, usage) for b in backends(settings)]
    mesh = MeshHealth(tuple(f.backend for f in forwarders),
                      {f.backend.name: f.channel for f in forwarders})
    servicer = GatewayServicer(mesh, usage)

    def forwarding(fw: Forwarder) -> Binding:
        def add(server: grpc.aio.Server) -> None:
            server.add_generic_rpc_handlers((fw.handler(),))
        return Binding(fw.backend.service.full_name, add)

    async def become_ready(running: RunningServer) -> None:
        await running.health.set(GATEWAY_SERVICE, SERVING)
        await mesh.start(running.health)

    async def close() -> None:
        await mesh.stop()
        for fw in forwarders:
            await fw.close()

    return App(
        bindings=[
            Binding(GATEWAY_SERVICE, lambda server: gateway_pb2_grpc.
                    add_GatewayServiceServicer_to_server(servicer, server)),
            *(forwarding(fw) for fw in forwarders),
        ],
        become_ready=become_ready,
        close=close,
    )
