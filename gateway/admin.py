"""AdminService: tenants, their quotas and their API keys.

`Tenancy` holds the rules (names, scopes, lifetimes, quotas) over the store; the servicer
converts proto <-> domain and checks the caller holds the admin scope. A key's secret is
made here, handed back once, and only its hash reaches the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from cadenza.kit.interceptor import Context
from gateway.caller import caller
from gateway.keys import (
    check_scopes,
    check_tenant_name,
    hash_secret,
    new_key_id,
    new_secret,
    well_formed,
)
from gateway.store import SCOPES, ApiKey, Quota, Store, Tenant

ADMIN_TENANT = "admin"
MAX_TTL_S = 10 * 366 * 86400  # ten years, leap days included
MAX_GRACE_S = 86400
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 500
MAX_MODEL_NAME = 200


class Tenancy:
    """The rules for tenants and keys, over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create_tenant(self, name: str, display_name: str,
                            quotas: Sequence[Quota]) -> Tenant:
        """A new tenant; AlreadyExists if the name is taken."""
        check_tenant_name(name)
        _check_length("display_name", display_name, MAX_DISPLAY_NAME)
        checked = check_quotas(quotas)
        if await self._store.get_tenant(name) is not None:
            raise AlreadyExists(f"a tenant named {name!r} exists already: pick another name")
        return await self._store.create_tenant(
            Tenant(name, display_name, datetime.now(UTC), checked))

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""
        return await self._store.list_tenants()

    async def set_quotas(self, name: str, quotas: Sequence[Quota]) -> Tenant:
        """Replaces the tenant's quotas."""
        checked = check_quotas(quotas)
        await self._tenant(name)
        return await self._store.set_quotas(name, checked)

    async def create_key(self, tenant: str, scopes: Iterable[str], ttl_seconds: int,
                         description: str) -> tuple[ApiKey, str]:
        """A new key of the tenant's, and its secret (not kept anywhere)."""
        checked = check_scopes(scopes)
        check_ttl(ttl_seconds)
        _check_length("description", description, MAX_DESCRIPTION)
        await self._tenant(tenant)
        now = datetime.now(UTC)
        expire = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
        secret = new_secret()
        key = ApiKey(new_key_id(), tenant, checked, now, expire_time=expire,
                     description=description)
        return await self._store.create_key(key, hash_secret(secret)), secret

    async def list_keys(self, tenant: str, include_inactive: bool) -> list[ApiKey]:
        """The tenant's keys, oldest first; revoked and expired ones only if asked."""
        await self._tenant(tenant)
        return await self._store.list_keys(tenant, include_inactive, datetime.now(UTC))

    async def rotate_key(self, key_id: str, grace_seconds: int) -> tuple[ApiKey, str]:
        """A new secret for the key; the old one works for grace_seconds more."""
        check_grace(grace_seconds)
        await self._key(key_id)
        now = datetime.now(UTC)
        grace = now + timedelta(seconds=grace_seconds) if grace_seconds else None
        secret = new_secret()
        return await self._store.rotate_key(key_id, hash_secret(secret), now, grace), secret

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revokes the key at once; revoking twice keeps the first revoke time."""
        await self._key(key_id)
        return await self._store.revoke_key(key_id, datetime.now(UTC))

    async def _tenant(self, name: str) -> Tenant:
        if not name:
            raise InvalidArgument("tenant", "name the tenant")
        tenant = await self._store.get_tenant(name)
        if tenant is None:
            raise NotFound(f"no tenant named {name!r}: `cadenza tenants list` shows them")
        return tenant

    async def _key(self, key_id: str) -> ApiKey:
        if not key_id:
            raise InvalidArgument("key_id", "name the key (its id, e.g. key_3f9c2a1b7d4e)")
        key = await self._store.get_key(key_id)
        if key is None:
            raise NotFound(f"no key with id {key_id!r}: `cadenza keys list --tenant NAME` "
                           "shows a tenant's keys")
        return key


def check_ttl(ttl_seconds: int) -> int:
    """The key lifetime, or InvalidArgument giving the range."""
    if not 0 <= ttl_seconds <= MAX_TTL_S:
        raise InvalidArgument("ttl_seconds", f"{ttl_seconds}: use 0 (never expires) to "
                              f"{MAX_TTL_S} (ten years)")
    return ttl_seconds


def check_grace(grace_seconds: int) -> int:
    """The rotation grace, or InvalidArgument giving the range."""
    if not 0 <= grace_seconds <= MAX_GRACE_S:
        raise InvalidArgument("grace_seconds", f"{grace_seconds}: use 0 (the old secret "
                              f"stops at once) to {MAX_GRACE_S} (a day)")
    return grace_seconds


def check_quotas(quotas: Sequence[Quota]) -> tuple[Quota, ...]:
    """The quotas, or InvalidArgument naming the first bad one and what to fix."""
    seen: set[str] = set()
    for i, quota in enumerate(quotas):
        where = f"quotas[{i}]"
        if not quota.model:
            raise InvalidArgument(f"{where}.model", "name a model from ListModels, or '*' "
                                  "for every model")
        _check_length(f"{where}.model", quota.model, MAX_MODEL_NAME)
        if quota.model in seen:
            raise InvalidArgument(f"{where}.model", f"{quota.model!r} appears twice: give "
                                  "each model one quota")
        seen.add(quota.model)
        if quota.requests_per_minute < 0:
            raise InvalidArgument(f"{where}.requests_per_minute",
                                  f"{quota.requests_per_minute}: use 0 (no limit) or more")
        if not 0 <= quota.units_per_day < math.inf:  # also rejects NaN
            raise InvalidArgument(f"{where}.units_per_day",
                                  f"{quota.units_per_day}: use 0 (no limit) or more")
    return tuple(quotas)


def _check_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(field, f"{len(value)} characters: use at most {limit}")


async def bootstrap_admin(store: Store) -> str | None:
    """The secret of a new all-scopes key of tenant "admin" when that tenant has no
    active admin key (a fresh store), else None."""
    now = datetime.now(UTC)
    await _ensure_admin_tenant(store, now)
    active = await store.list_keys(ADMIN_TENANT, False, now)
    if any("admin" in key.scopes for key in active):
        return None
    secret = new_secret()
    await store.create_key(ApiKey(new_key_id(), ADMIN_TENANT, frozenset(SCOPES), now,
                                  description="bootstrap"), hash_secret(secret))
    return secret


async def ensure_admin_secret(store: Store, secret: str) -> None:
    """Registers a secret made elsewhere (a Kubernetes Secret) as an all-scopes key of
    tenant "admin"; nothing to do when the store knows it already."""
    if not well_formed(secret):
        raise InvalidArgument("admin_key_file", "the file must hold one secret: 'cdz_' and "
                              "43 url-safe characters (`python -c 'from gateway.keys import "
                              "new_secret; print(new_secret())'` makes one)")
    now = datetime.now(UTC)
    digest = hash_secret(secret)
    if await store.find_key(digest, now) is not None:
        return
    await _ensure_admin_tenant(store, now)
    try:
        await store.create_key(ApiKey(new_key_id(), ADMIN_TENANT, frozenset(SCOPES), now,
                                      description="mounted admin secret"), digest)
    except AlreadyExists:
        # Another replica registered it between our lookup and our insert.
        if await store.find_key(digest, now) is None:
            raise


async def _ensure_admin_tenant(store: Store, now: datetime) -> None:
    if await store.get_tenant(ADMIN_TENANT) is not None:
        return
    try:
        await store.create_tenant(Tenant(ADMIN_TENANT, "Administrators", now))
    except AlreadyExists:
        pass  # another replica made it first


class AdminServicer(gateway_pb2_grpc.AdminServiceServicer):
    """AdminService: proto <-> domain; every method needs the admin scope."""

    def __init__(self, store: Store) -> None:
        self._tenancy = Tenancy(store)

    async def CreateTenant(self, request: gateway_pb2.CreateTenantRequest,
                           context: Context) -> gateway_pb2.CreateTenantResponse:
        """Adds a tenant with its quotas."""
        _require_admin()
        tenant = await self._tenancy.create_tenant(
            request.name, request.display_name, [quota_from_proto(q) for q in request.quotas])
        return gateway_pb2.CreateTenantResponse(tenant=tenant_to_proto(tenant))

    async def ListTenants(self, request: gateway_pb2.ListTenantsRequest,
                          context: Context) -> gateway_pb2.ListTenantsResponse:
        """Every tenant, by name."""
        _require_admin()
        tenants = await self._tenancy.list_tenants()
        return gateway_pb2.ListTenantsResponse(tenants=[tenant_to_proto(t) for t in tenants])

    async def SetQuotas(self, request: gateway_pb2.SetQuotasRequest,
                        context: Context) -> gateway_pb2.SetQuotasResponse:
        """Replaces the tenant's quotas."""
        _require_admin()
        tenant = await self._tenancy.set_quotas(
            request.tenant, [quota_from_proto(q) for q in request.quotas])
        return gateway_pb2.SetQuotasResponse(tenant=tenant_to_proto(tenant))

    async def CreateKey(self, request: gateway_pb2.CreateKeyRequest,
                        context: Context) -> gateway_pb2.CreateKeyResponse:
        """A new key and its secret, shown this once."""
        _require_admin()
        key, secret = await self._tenancy.create_key(
            request.tenant, request.scopes, request.ttl_seconds, request.description)
        return gateway_pb2.CreateKeyResponse(key=key_to_proto(key), secret=secret)

    async def ListKeys(self, request: gateway_pb2.ListKeysRequest,
                       context: Context) -> gateway_pb2.ListKeysResponse:
        """The tenant's keys (never their secrets)."""
        _require_admin()
        keys = await self._tenancy.list_keys(request.tenant, request.include_inactive)
        return gateway_pb2.ListKeysResponse(keys=[key_to_proto(k) for k in keys])

    async def RotateKey(self, request: gateway_pb2.RotateKeyRequest,
                        context: Context) -> gateway_pb2.RotateKeyResponse:
        """A new secret for the key, shown this once."""
        _require_admin()
        key, secret = await self._tenancy.rotate_key(request.key_id, request.grace_seconds)
        return gateway_pb2.RotateKeyResponse(key=key_to_proto(key), secret=secret)

    async def RevokeKey(self, request: gateway_pb2.RevokeKeyRequest,
                        context: Context) -> gateway_pb2.RevokeKeyResponse:
        """Revokes the key at once."""
        _require_admin()
        key = await self._tenancy.revoke_key(request.key_id)
        return gateway_pb2.RevokeKeyResponse(key=key_to_proto(key))


def _require_admin() -> None:
    if not caller.get().admin:
        raise PermissionDenied("this method needs a key with the 'admin' scope")


def quota_from_proto(quota: gateway_pb2.Quota) -> Quota:
    """The domain quota of a proto one."""
    return Quota(quota.model, quota.requests_per_minute, quota.units_per_day)


def quota_to_proto(quota: Quota) -> gateway_pb2.Quota:
    """The proto of a domain quota."""
    return gateway_pb2.Quota(model=quota.model, requests_per_minute=quota.requests_per_minute,
                             units_per_day=quota.units_per_day)


def tenant_to_proto(tenant: Tenant) -> gateway_pb2.Tenant:
    """The proto of a tenant."""
    return gateway_pb2.Tenant(name=tenant.name, display_name=tenant.display_name,
                              create_time=_timestamp(tenant.create_time),
                              quotas=[quota_to_proto(q) for q in tenant.quotas])


def key_to_proto(key: ApiKey) -> gateway_pb2.ApiKey:
    """The proto of a key's public part, scopes in their canonical order."""
    message = gateway_pb2.ApiKey(
        id=key.id, tenant=key.tenant, scopes=[s for s in SCOPES if s in key.scopes],
        create_time=_timestamp(key.create_time), description=key.description)
    for field, value in (("expire_time", key.expire_time), ("revoke_time", key.revoke_time),
                         ("rotate_time", key.rotate_time)):
        if value is not None:
            getattr(message, field).CopyFrom(_timestamp(value))
    return message


def _timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    return ts
