"""The gateway's own store: tenants, hashed API keys, usage records and long-running
operations. One port (`Store`), two engines chosen at start-up from the settings:
embedded SQLite by default, PostgreSQL when DATABASE_URL is set (`open_store`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# Scopes a key may carry: one per public service, and admin.
SCOPES = ("search", "recommend", "generate", "admin")
# Usage groupings (GetUsage group_by), as column names.
GROUPS = ("model", "day", "method", "key_id", "code")


@dataclass(frozen=True)
class Quota:
    """Requests per minute and units per UTC day for one model ("*": every model)."""
    model: str
    requests_per_minute: int = 0
    units_per_day: float = 0.0


@dataclass(frozen=True)
class Tenant:
    """A customer: owns keys, quotas and usage."""
    name: str
    display_name: str
    create_time: datetime
    quotas: tuple[Quota, ...] = ()


@dataclass(frozen=True)
class ApiKey:
    """A key's public part; its secret is stored only as a hash."""
    id: str
    tenant: str
    scopes: frozenset[str]
    create_time: datetime
    expire_time: datetime | None = None
    revoke_time: datetime | None = None
    rotate_time: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class UsageRecord:
    """One metered call. `request_id` is the primary key: writing the same call twice
    (a retry of the write, a replayed access log) keeps one record. A record reserved at
    admission has settled=False and is completed (code, units, bytes, latency) later."""
    request_id: str
    tenant: str
    key_id: str
    model: str
    method: str
    time: datetime
    code: str = ""
    units: float = 0.0
    unit: str = "requests"
    request_bytes: int = 0
    response_bytes: int = 0
    latency_ms: float = 0.0
    settled: bool = False


@dataclass(frozen=True)
class UsageRow:
    """Usage summed over one group; fields not grouped by are empty."""
    model: str = ""
    day: str = ""
    method: str = ""
    key_id: str = ""
    code: str = ""
    calls: int = 0
    units: float = 0.0
    unit: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class OperationRecord:
    """A long-running operation as stored: its request and its google.longrunning.Operation
    (metadata, and result or error once done), both serialized protos."""
    name: str
    tenant: str
    method: str
    request: bytes
    operation: bytes
    done: bool
    create_time: datetime
    update_time: datetime
    cancel_requested: bool = False
    expire_time: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # The gateway replica running it, and until when its claim holds unless renewed.
    owner: str = ""
    lease_until: datetime | None = None


class Store(Protocol):
    """What the gateway keeps durably. Every method is safe to call from many replicas
    at once (they share one database)."""

    async def create_tenant(self, tenant: Tenant) -> Tenant:
        """Adds a tenant; AlreadyExists if the name is taken."""

    async def get_tenant(self, name: str) -> Tenant | None:
        """The tenant, or None."""

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""

    async def set_quotas(self, name: str, quotas: Sequence[Quota]) -> Tenant:
        """Replaces the tenant's quotas; NotFound if no such tenant."""

    async def create_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        """Adds a key with the hash of its secret; NotFound if the tenant is unknown."""

    async def find_key(self, secret_hash: str, now: datetime) -> ApiKey | None:
        """The key whose current secret (or an old one still in its rotation grace) has
        this hash; revoked and expired keys are returned too, so callers can say which."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""

    async def list_keys(self, tenant: str, include_inactive: bool, now: datetime) -> list[ApiKey]:
        """The tenant's keys, oldest first; revoked and expired ones only if asked."""

    async def rotate_key(self, key_id: str, secret_hash: str, now: datetime,
                         grace_until: datetime | None) -> ApiKey:
        """Gives the key a new secret; the old one works until grace_until (None: stops
        now). NotFound if unknown; FailedPrecondition if revoked."""

    async def revoke_key(self, key_id: str, now: datetime) -> ApiKey:
        """Revokes the key (idempotent: the first revoke time stays); NotFound if unknown."""

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        """Writes the records in one transaction, durably before returning. A record whose
        request id exists is merged: a settled record replaces a reserved one; a second
        settled record for the same id is ignored (counted once)."""

    async def usage(self, tenant: str, start: datetime | None, end: datetime | None,
                    group_by: Sequence[str]) -> list[UsageRow]:
        """The tenant's usage in [start, end), summed per group (names from GROUPS),
        sorted by the group columns."""

    async def usage_records(self, tenant: str, start: datetime | None,
                            end: datetime | None, limit: int = 100_000) -> list[UsageRecord]:
        """The tenant's raw records in [start, end), oldest first, at most limit."""

    async def count_usage(self, tenant: str) -> int:
        """How many usage records the tenant has (tests count them after a crash)."""

    async def put_operation(self, record: OperationRecord) -> None:
        """Inserts or replaces the operation."""

    async def get_operation(self, name: str) -> OperationRecord | None:
        """The operation, or None."""

    async def list_operations(self, tenant: str, page_size: int,
                              page_token: str) -> tuple[list[OperationRecord], str]:
        """The tenant's operations, newest first, a page at a time; the token of the next
        page, or "" after the last."""

    async def request_cancel(self, name: str) -> OperationRecord | None:
        """Marks the operation as asked to cancel; None if unknown."""

    async def unfinished_operations(self) -> list[OperationRecord]:
        """Operations not done (to resume after a restart)."""

    async def claim_operation(self, name: str, owner: str, now: datetime,
                              lease_until: datetime) -> OperationRecord | None:
        """Makes owner the operation's runner until lease_until, if it is not done and
        nobody else holds an unexpired claim; the claimed record, or None."""

    async def update_operation(self, record: OperationRecord) -> OperationRecord | None:
        """Writes the operation's state, lease, done and expiry, if record.owner still
        holds it and it is not done; the record as stored (with cancel_requested as other
        replicas set it), or None when the claim was lost or the operation is gone."""

    async def delete_operation(self, name: str) -> bool:
        """Forgets the operation; False if unknown."""

    async def delete_expired_operations(self, now: datetime) -> int:
        """Forgets done operations whose expire_time has passed; how many."""

    async def close(self) -> None:
        """Releases connections."""
