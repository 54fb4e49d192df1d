"""Wires the gateway: forwarders per backend, mesh health, usage, GatewayService, and the
control-plane services Envoy calls (ext_authz, access-log service)."""

from __future__ import annotations

import grpc.aio
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc

from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.kit.server import App, Binding, RunningServer
from gateway.access import Access
from gateway.access_log import AccessLogServicer
from gateway.authz import AuthorizationServicer
from gateway.forward import Forwarder
from gateway.mesh_health import GATEWAY_SERVICE, SERVING, MeshHealth
from gateway.routes import backends
from gateway.servicer import GatewayServicer
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter

AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"
ACCESS_LOG_SERVICE = "envoy.service.accesslog.v3.AccessLogService"


async def build_gateway(settings: GatewaySettings, access: Access | None = None) -> App:
    """The gateway's servicers and forwarders, wired to the settings' backends.

    `access` holds the keys and quota buckets; the gateway's interceptor must share it,
    so that calls through Envoy and calls straight to the gateway draw on one quota.
    """
    access = access or Access(settings)
    usage = UsageMeter()
    forwarders = [Forwarder(b, settings, usage) for b in backends(settings)]
    mesh = MeshHealth(tuple(f.backend for f in forwarders),
                      {f.backend.name: f.channel for f in forwarders})
    servicer = GatewayServicer(mesh, usage)
    authz = AuthorizationServicer(access)
    access_log = AccessLogServicer(usage, frozenset(f.backend.name for f in forwarders),
                                   trust_principal=access.active)

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
            Binding(AUTHZ_SERVICE, lambda server: external_auth_pb2_grpc.
                    add_AuthorizationServicer_to_server(authz, server)),
            Binding(ACCESS_LOG_SERVICE, lambda server: als_pb2_grpc.
                    add_AccessLogServiceServicer_to_server(access_log, server)),
        ],
        become_ready=become_ready,
        close=close,
    )
