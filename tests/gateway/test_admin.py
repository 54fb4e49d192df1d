"""AdminService over a real gRPC server and a real SQLite store: tenants, quotas, keys
(secrets shown once, stored only hashed), rotation, revocation, the admin scope and the
bootstrap key. The CLI over the same server: tests/e2e/test_admin_cli.py."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
import pytest

from cadenza.gateway.v1 import gateway_pb2 as pb
from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.kit.server import App, Binding, RunningServer, serve_in_process
from gateway.admin import AdminServicer, bootstrap_admin, ensure_admin_secret
from gateway.caller import Caller, caller
from gateway.keys import hash_secret, new_secret, well_formed
from gateway.store import Store
from gateway.store.sql import open_store

ADMIN_TOKEN = "admin-token"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
OUTSIDER = (("authorization", "Bearer someone-else"),)


class AdminCaller(grpc.aio.ServerInterceptor):
    """Stands in for the access check: the admin token is an admin caller, anything else
    a tenant's search-only key."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        metadata = dict(details.invocation_metadata or ())
        if metadata.get("authorization") == f"Bearer {ADMIN_TOKEN}":
            caller.set(Caller("admin", "key_admin", frozenset({"admin"})))
        else:
            caller.set(Caller("acme", "key_acme", frozenset({"search"})))
        return await continuation(details)


@dataclass
class Server:
    store: Store
    db: pathlib.Path
    running: RunningServer
    channel: grpc.aio.Channel

    @property
    def stub(self) -> gateway_pb2_grpc.AdminServiceAsyncStub:
        return gateway_pb2_grpc.AdminServiceStub(self.channel)


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[Server]:
    db = tmp_path / "g.db"
    store = await open_store(str(db))
    admin = AdminServicer(store)
    running = await serve_in_process(
        App(bindings=[
            Binding("cadenza.gateway.v1.AdminService", lambda s: gateway_pb2_grpc.
                    add_AdminServiceServicer_to_server(admin, s)),
        ]),
        interceptors=[AdminCaller()])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield Server(store, db, running, channel)
    await channel.close()
    await running.server.stop(None)
    await store.close()


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_create_and_list_tenants_with_quotas(server: Server) -> None:
    quotas = [pb.Quota(model="*", requests_per_minute=60, units_per_day=1000),
              pb.Quota(model="smollm2-135m-instruct", units_per_day=50_000)]
    reply = await server.stub.CreateTenant(pb.CreateTenantRequest(
        name="acme", display_name="Acme Corp", quotas=quotas), metadata=ADMIN, timeout=5)
    assert reply.tenant.name == "acme" and reply.tenant.display_name == "Acme Corp"
    assert reply.tenant.create_time.ToDatetime(UTC) <= datetime.now(UTC)
    assert {q.model: q.units_per_day for q in reply.tenant.quotas} == {
        "*": 1000, "smollm2-135m-instruct": 50_000}
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="beta"), metadata=ADMIN,
                                   timeout=5)
    listed = await server.stub.ListTenants(pb.ListTenantsRequest(), metadata=ADMIN, timeout=5)
    assert [t.name for t in listed.tenants] == ["acme", "beta"]

    replaced = await server.stub.SetQuotas(pb.SetQuotasRequest(
        tenant="acme", quotas=[pb.Quota(model="*", requests_per_minute=5)]),
        metadata=ADMIN, timeout=5)
    assert [(q.model, q.requests_per_minute) for q in replaced.tenant.quotas] == [("*", 5)]
    stored = await server.store.get_tenant("acme")
    assert stored is not None and [q.model for q in stored.quotas] == ["*"]


async def test_tenant_mistakes_say_what_to_fix(server: Server) -> None:
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=ADMIN,
                                   timeout=5)
    dup = await failure(server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"),
                                                 metadata=ADMIN, timeout=5))
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS and "acme" in (dup.details() or "")

    bad = await failure(server.stub.CreateTenant(pb.CreateTenantRequest(name="Acme Corp"),
                                                 metadata=ADMIN, timeout=5))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lowercase letters, digits and '-'" in (bad.details() or "")

    twice = await failure(server.stub.SetQuotas(pb.SetQuotasRequest(
        tenant="acme", quotas=[pb.Quota(model="*"), pb.Quota(model="*")]),
        metadata=ADMIN, timeout=5))
    assert twice.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quotas[1].model" in (twice.details() or "")
    negative = await failure(server.stub.SetQuotas(pb.SetQuotasRequest(
        tenant="acme", quotas=[pb.Quota(model="*", requests_per_minute=-1)]),
        metadata=ADMIN, timeout=5))
    assert "requests_per_minute" in (negative.details() or "")
    unknown = await failure(server.stub.SetQuotas(pb.SetQuotasRequest(tenant="nobody"),
                                                  metadata=ADMIN, timeout=5))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_key_secret_is_shown_once_and_stored_only_hashed(server: Server) -> None:
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=ADMIN,
                                   timeout=5)
    reply = await server.stub.CreateKey(pb.CreateKeyRequest(
        tenant="acme", scopes=["search", "generate"], ttl_seconds=3600,
        description="ci"), metadata=ADMIN, timeout=5)
    assert well_formed(reply.secret)
    assert list(reply.key.scopes) == ["search", "generate"]
    assert reply.key.HasField("expire_time") and not reply.key.HasField("revoke_time")
    found = await server.store.find_key(hash_secret(reply.secret), datetime.now(UTC))
    assert found is not None and found.id == reply.key.id and found.tenant == "acme"

    files = [p for p in (server.db, server.db.with_name("g.db-wal")) if p.exists()]
    stored = b"".join(p.read_bytes() for p in files)
    assert hash_secret(reply.secret).encode() in stored  # the bytes we read are the store's
    assert reply.secret.encode() not in stored
    assert reply.secret[4:].encode() not in stored

    listed = await server.stub.ListKeys(pb.ListKeysRequest(tenant="acme"), metadata=ADMIN,
                                        timeout=5)
    assert [k.id for k in listed.keys] == [reply.key.id]
    assert reply.secret not in str(listed)


async def test_key_mistakes_say_what_to_fix(server: Server) -> None:
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=ADMIN,
                                   timeout=5)
    cases = [
        (pb.CreateKeyRequest(tenant="acme", scopes=["serch"]), "unknown scopes ['serch']"),
        (pb.CreateKeyRequest(tenant="acme"), "at least one scope"),
        (pb.CreateKeyRequest(tenant="acme", scopes=["search"], ttl_seconds=-5), "ttl_seconds"),
        (pb.CreateKeyRequest(tenant="acme", scopes=["search"],
                             ttl_seconds=11 * 366 * 86400), "ten years"),
    ]
    for request, words in cases:
        error = await failure(server.stub.CreateKey(request, metadata=ADMIN, timeout=5))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert words in (error.details() or ""), (request, error.details())
    nobody = await failure(server.stub.CreateKey(pb.CreateKeyRequest(
        tenant="nobody", scopes=["search"]), metadata=ADMIN, timeout=5))
    assert nobody.code() == grpc.StatusCode.NOT_FOUND
    for call in (server.stub.RotateKey(pb.RotateKeyRequest(key_id="key_0000"),
                                       metadata=ADMIN, timeout=5),
                 server.stub.RevokeKey(pb.RevokeKeyRequest(key_id="key_0000"),
                                       metadata=ADMIN, timeout=5),
                 server.stub.ListKeys(pb.ListKeysRequest(tenant="nobody"),
                                      metadata=ADMIN, timeout=5)):
        assert (await failure(call)).code() == grpc.StatusCode.NOT_FOUND


async def test_rotate_replaces_the_secret_with_optional_grace(server: Server) -> None:
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=ADMIN,
                                   timeout=5)
    created = await server.stub.CreateKey(pb.CreateKeyRequest(
        tenant="acme", scopes=["search"]), metadata=ADMIN, timeout=5)
    now = datetime.now(UTC)

    rotated = await server.stub.RotateKey(pb.RotateKeyRequest(key_id=created.key.id),
                                          metadata=ADMIN, timeout=5)
    assert well_formed(rotated.secret) and rotated.secret != created.secret
    assert rotated.key.id == created.key.id and rotated.key.HasField("rotate_time")
    assert await server.store.find_key(hash_secret(created.secret), now) is None
    assert (await server.store.find_key(hash_secret(rotated.secret), now)) is not None

    graced = await server.stub.RotateKey(pb.RotateKeyRequest(
        key_id=created.key.id, grace_seconds=600), metadata=ADMIN, timeout=5)
    old = await server.store.find_key(hash_secret(rotated.secret), datetime.now(UTC))
    assert old is not None and old.id == created.key.id
    assert await server.store.find_key(hash_secret(graced.secret), datetime.now(UTC))

    too_long = await failure(server.stub.RotateKey(pb.RotateKeyRequest(
        key_id=created.key.id, grace_seconds=86401), metadata=ADMIN, timeout=5))
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "grace_seconds" in (too_long.details() or "")


async def test_revoke_is_idempotent_and_hides_the_key(server: Server) -> None:
    await server.stub.CreateTenant(pb.CreateTenantRequest(name="acme"), metadata=ADMIN,
                                   timeout=5)
    created = await server.stub.CreateKey(pb.CreateKeyRequest(
        tenant="acme", scopes=["search"]), metadata=ADMIN, timeout=5)
    first = await server.stub.RevokeKey(pb.RevokeKeyRequest(key_id=created.key.id),
                                        metadata=ADMIN, timeout=5)
    second = await server.stub.RevokeKey(pb.RevokeKeyRequest(key_id=created.key.id),
                                         metadata=ADMIN, timeout=5)
    assert first.key.HasField("revoke_time")
    assert second.key.revoke_time == first.key.revoke_time
    active = await server.stub.ListKeys(pb.ListKeysRequest(tenant="acme"), metadata=ADMIN,
                                        timeout=5)
    assert list(active.keys) == []
    everything = await server.stub.ListKeys(pb.ListKeysRequest(
        tenant="acme", include_inactive=True), metadata=ADMIN, timeout=5)
    assert [k.id for k in everything.keys] == [created.key.id]
    found = await server.store.find_key(hash_secret(created.secret), datetime.now(UTC))
    assert found is not None and found.revoke_time is not None
    cannot = await failure(server.stub.RotateKey(pb.RotateKeyRequest(key_id=created.key.id),
                                                 metadata=ADMIN, timeout=5))
    assert cannot.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_every_method_needs_the_admin_scope(server: Server) -> None:
    calls: list[Awaitable[Any]] = [
        server.stub.CreateTenant(pb.CreateTenantRequest(name="evil"), metadata=OUTSIDER),
        server.stub.ListTenants(pb.ListTenantsRequest(), metadata=OUTSIDER),
        server.stub.SetQuotas(pb.SetQuotasRequest(tenant="acme"), metadata=OUTSIDER),
        server.stub.CreateKey(pb.CreateKeyRequest(tenant="acme", scopes=["admin"]),
                              metadata=OUTSIDER),
        server.stub.ListKeys(pb.ListKeysRequest(tenant="acme"), metadata=OUTSIDER),
        server.stub.RotateKey(pb.RotateKeyRequest(key_id="key_1"), metadata=OUTSIDER),
        server.stub.RevokeKey(pb.RevokeKeyRequest(key_id="key_1"), metadata=OUTSIDER),
    ]
    for call in calls:
        error = await failure(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == "this method needs a key with the 'admin' scope"
    assert await server.store.get_tenant("evil") is None


async def test_bootstrap_admin_makes_one_key_once(server: Server) -> None:
    secret = await bootstrap_admin(server.store)
    assert secret is not None and well_formed(secret)
    key = await server.store.find_key(hash_secret(secret), datetime.now(UTC))
    assert key is not None and key.tenant == "admin" and key.description == "bootstrap"
    assert key.scopes == frozenset({"search", "recommend", "generate", "admin"})
    assert await bootstrap_admin(server.store) is None
    # Once that key is revoked, a restart makes a new one.
    await server.store.revoke_key(key.id, datetime.now(UTC))
    again = await bootstrap_admin(server.store)
    assert again is not None and again != secret


async def test_mounted_admin_secret_is_registered_once(server: Server) -> None:
    with pytest.raises(Exception, match="admin_key_file"):
        await ensure_admin_secret(server.store, "hunter2")
    secret = new_secret()
    await ensure_admin_secret(server.store, secret)
    await ensure_admin_secret(server.store, secret)
    keys = await server.store.list_keys("admin", False, datetime.now(UTC))
    assert len(keys) == 1 and "admin" in keys[0].scopes
    found = await server.store.find_key(hash_secret(secret), datetime.now(UTC))
    assert found is not None and found.id == keys[0].id
    # The mounted key counts as the active admin key: no bootstrap key on top.
    assert await bootstrap_admin(server.store) is None
