"""Tenants and keys written straight into a gateway's store, for tests of the public path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gateway import keys
from gateway.store import ApiKey, Quota, Store, Tenant


async def add_tenant(store: Store, name: str, quotas: Iterable[Quota] = ()) -> Tenant:
    """A tenant with these quotas."""
    return await store.create_tenant(Tenant(name, name.title(), datetime.now(UTC),
                                            tuple(quotas)))


async def add_key(store: Store, tenant: str,
                  scopes: Iterable[str] = ("search", "recommend", "generate"),
                  ttl_s: float | None = None) -> tuple[ApiKey, str]:
    """A key of the tenant's with these scopes (every public service by default, not
    admin), and its secret."""
    now = datetime.now(UTC)
    secret = keys.new_secret()
    key = ApiKey(keys.new_key_id(), tenant, frozenset(scopes), now,
                 expire_time=None if ttl_s is None else now + timedelta(seconds=ttl_s))
    await store.create_key(key, keys.hash_secret(secret))
    return key, secret


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata that sends the key."""
    return (("authorization", f"Bearer {secret}"),)
