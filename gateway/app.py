"""Wires the gateway: the store, quotas and metering behind every call, forwarders per
backend, mesh health, GatewayService, AdminService, the operations runner and
google.longrunning.Operations, and the
control-plane services Envoy calls (ext_authz, access-log service)."""

from __future__ import annotations

import logging
import pathlib

import grpc.aio
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from google.longrunning import operations_pb2_grpc

from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.kit.server import App, Binding, RunningServer
from gateway.access import Access
from gateway.access_log import AccessLogServicer
from gateway.admin import AdminServicer, bootstrap_admin, ensure_admin_secret
from gateway.authz import AuthorizationServicer
from gateway.forward import Forwarder
from gateway.mesh_health import GATEWAY_SERVICE, SERVING, MeshHealth
from gateway.metering import Metering, UsageWriter
from gateway.operations.runner import Runner, RunnerSettings
from gateway.operations.servicer import Operations, OperationsServicer
from gateway.quota import open_policy
from gateway.routes import backends
from gateway.servicer import GatewayServicer
from gateway.settings import GatewaySettings
from gateway.store import Store
from gateway.store.sql import open_store
from gateway.usage import UsageMeter

logger = logging.getLogger(__name__)

AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"
ACCESS_LOG_SERVICE = "envoy.service.accesslog.v3.AccessLogService"
ADMIN_SERVICE = "cadenza.gateway.v1.AdminService"
OPERATIONS_SERVICE = "google.longrunning.Operations"


async def build_gateway(settings: GatewaySettings, access: Access | None = None) -> App:
    """The gateway's servicers and forwarders, wired to the settings' backends and store.

    `access` is the object the gateway's interceptor holds (the server is built with the
    interceptor before this runs); it is attached to the store here, so calls through
    Envoy (ext_authz) and calls straight to the gateway draw on the same keys and quotas.
    """
    access = access or Access()
    store = await open_store(settings.database_url or settings.store_path)
    policy = await open_policy(settings.redis_url)
    writer = UsageWriter(store)
    metering = Metering(writer, charge=policy.charge)
    access.attach(store, policy, metering, settings.require_keys)
    await _bootstrap(settings, store)

    usage = UsageMeter()
    forwarders = [Forwarder(b, settings, usage, metering) for b in backends(settings)]
    channels = {f.backend.service.full_name: f.channel for f in forwarders}
    mesh = MeshHealth(tuple(f.backend for f in forwarders),
                      {f.backend.name: f.channel for f in forwarders})
    runner = Runner(store, metering, policy if settings.require_keys else None, channels,
                    tuple(f.backend for f in forwarders), RunnerSettings(
                        retention_s=settings.operation_retention_s,
                        call_deadline_s=settings.operation_deadline_s,
                        lease_s=settings.operation_lease_s, poll_s=settings.operation_poll_s,
                        max_running=settings.max_running_operations))
    operations = Operations(store, runner, policy if settings.require_keys else None)
    servicer = GatewayServicer(mesh, store, policy, channels, operations)
    admin = AdminServicer(store)
    authz = AuthorizationServicer(access)
    access_log = AccessLogServicer(usage, metering,
                                   frozenset(f.backend.name for f in forwarders),
                                   trust_caller=access.required)

    def forwarding(fw: Forwarder) -> Binding:
        def add(server: grpc.aio.Server) -> None:
            server.add_generic_rpc_handlers((fw.handler(),))
        return Binding(fw.backend.service.full_name, add)

    async def become_ready(running: RunningServer) -> None:
        writer.start()
        runner.start()
        await running.health.set(GATEWAY_SERVICE, SERVING)
        await mesh.start(running.health)

    async def close() -> None:
        await mesh.stop()
        await runner.stop()
        await writer.close()
        for fw in forwarders:
            await fw.close()
        await policy.close()
        await store.close()

    return App(
        bindings=[
            Binding(GATEWAY_SERVICE, lambda server: gateway_pb2_grpc.
                    add_GatewayServiceServicer_to_server(servicer, server)),
            Binding(ADMIN_SERVICE, lambda server: gateway_pb2_grpc.
                    add_AdminServiceServicer_to_server(admin, server)),
            Binding(OPERATIONS_SERVICE, lambda server: operations_pb2_grpc.
                    add_OperationsServicer_to_server(OperationsServicer(operations), server)),
            *(forwarding(fw) for fw in forwarders),
            Binding(AUTHZ_SERVICE, lambda server: external_auth_pb2_grpc.
                    add_AuthorizationServicer_to_server(authz, server)),
            Binding(ACCESS_LOG_SERVICE, lambda server: als_pb2_grpc.
                    add_AccessLogServiceServicer_to_server(access_log, server)),
        ],
        become_ready=become_ready,
        close=close,
    )


async def _bootstrap(settings: GatewaySettings, store: Store) -> None:
    """Registers the mounted admin secret (Kubernetes), or makes the first admin key
    when the store has none and prints it once (`make up`)."""
    if settings.admin_key_file:
        await ensure_admin_secret(store, _read(settings.admin_key_file))
        return
    if not settings.require_keys:
        return
    secret = await bootstrap_admin(store)
    if secret is None:
        return
    logger.warning("first admin API key (shown once; the store keeps only its hash): %s",
                   secret)
    if settings.bootstrap_key_file:
        # For the CLI and tools on this machine (`make up` names .run/admin.key).
        _write_private(settings.bootstrap_key_file, secret)


# Start-up only, once each: a blocking read or write of a few bytes is fine here.
def _read(path: str) -> str:
    return pathlib.Path(path).read_text().strip()


def _write_private(name: str, secret: str) -> None:
    path = pathlib.Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
