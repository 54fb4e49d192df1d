"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL, and the
mapping between their rows and the store's records.

Times go in and come out as timezone-aware UTC datetimes: PostgreSQL keeps them as
timestamptz, SQLite (which has no time type) as UTC epoch seconds, so ranges compare as
numbers there too. `usage.day` is the UTC date of `usage.time`, kept as a column so
grouping by day is one indexed column on either engine.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from cadenza.kit.errors import InvalidArgument
from gateway.store import ApiKey, OperationRecord, Quota, Tenant, UsageRecord

_WAL_ATTEMPTS = 1500  # x 20 ms: 30 s, the busy timeout


class UtcTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime: timestamptz on PostgreSQL, epoch seconds elsewhere."""

    impl = sa.Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """timestamptz on PostgreSQL; a float of epoch seconds on SQLite."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.DateTime(timezone=True))
        return dialect.type_descriptor(sa.Float())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """The value as the engine stores it (a naive datetime is taken as UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if dialect.name == "postgresql":
            return value.astimezone(UTC)
        return value.timestamp()

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """The stored value as an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromtimestamp(float(value), UTC)


metadata = sa.MetaData()

tenants = sa.Table(
    "tenants", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("display_name", sa.String, nullable=False, default=""),
    sa.Column("create_time", UtcTime, nullable=False),
)

quotas = sa.Table(
    "quotas", metadata,
    sa.Column("tenant", sa.String, sa.ForeignKey("tenants.name"), primary_key=True),
    sa.Column("model", sa.String, primary_key=True),
    sa.Column("requests_per_minute", sa.BigInteger, nullable=False, default=0),
    sa.Column("units_per_day", sa.Float, nullable=False, default=0.0),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, sa.ForeignKey("tenants.name"), nullable=False,
              index=True),
    sa.Column("scopes", sa.String, nullable=False),  # comma-separated
    sa.Column("create_time", UtcTime, nullable=False),
    sa.Column("expire_time", UtcTime),
    sa.Column("revoke_time", UtcTime),
    sa.Column("rotate_time", UtcTime),
    sa.Column("description", sa.String, nullable=False, default=""),
)

# The hashes of each key's secrets: the current one (valid_until NULL) and the one before
# it while its rotation grace lasts. Looked up by hash on every call.
key_secrets = sa.Table(
    "key_secrets", metadata,
    sa.Column("hash", sa.String, primary_key=True),
    sa.Column("key_id", sa.String, sa.ForeignKey("api_keys.id"), nullable=False,
              index=True),
    sa.Column("valid_until", UtcTime),
)

usage = sa.Table(
    "usage", metadata,
    sa.Column("request_id", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("key_id", sa.String, nullable=False, default=""),
    sa.Column("model", sa.String, nullable=False, default=""),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("code", sa.String, nullable=False, default=""),
    sa.Column("units", sa.Float, nullable=False, default=0.0),
    sa.Column("unit", sa.String, nullable=False, default="requests"),
    sa.Column("request_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("response_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("latency_ms", sa.Float, nullable=False, default=0.0),
    sa.Column("time", UtcTime, nullable=False),
    sa.Column("day", sa.String, nullable=False),
    sa.Column("settled", sa.Boolean, nullable=False, default=False),
    sa.Index("usage_tenant_time", "tenant", "time"),
)

operations = sa.Table(
    "operations", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("request", sa.LargeBinary, nullable=False),
    sa.Column("operation", sa.LargeBinary, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False, default=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("create_time", UtcTime, nullable=False),
    sa.Column("update_time", UtcTime, nullable=False),
    sa.Column("expire_time", UtcTime),
    sa.Column("extra", sa.JSON, nullable=False, default=dict),
    sa.Column("owner", sa.String, nullable=False, default=""),
    sa.Column("lease_until", UtcTime),
    sa.Index("operations_tenant_create", "tenant", "create_time"),
    sa.Index("operations_done", "done"),
)


# -- rows <-> records ---------------------------------------------------------------

def sqlite_connect(connection: Any, _record: Any) -> None:
    """Sets up a new SQLite connection: WAL, synchronous=FULL, a busy timeout, foreign keys."""
    # Transactions are begun by _sqlite_begin, not by the driver's own guesswork.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first, so the pragmas below wait too
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    # WAL is a property of the file, set once. Switching to it needs the file to itself,
    # and SQLite answers "locked" at once (no busy wait) while another replica opening
    # the same new file holds it; so wait and look again.
    for attempt in itertools.count():
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # the driver's OperationalError, wrapped or not
            if "locked" not in str(error) or attempt >= _WAL_ATTEMPTS:
                raise
            time.sleep(0.02)


def sqlite_begin(conn: sa.Connection) -> None:
    """Begins a SQLite transaction, IMMEDIATE (taking the write lock) for writes."""
    immediate = conn.get_execution_options().get("cadenza_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def write_quotas(conn: AsyncConnection, tenant: str, given: Sequence[Quota]) -> None:
    """Inserts the tenant's quotas (after the old ones are deleted)."""
    by_model = {q.model: q for q in given}  # a model named twice: the last one counts
    if by_model:
        await conn.execute(quotas.insert(), [
            dict(tenant=tenant, model=q.model, requests_per_minute=q.requests_per_minute,
                 units_per_day=q.units_per_day) for q in by_model.values()])


async def tenant_from_row(conn: AsyncConnection, row: Any) -> Tenant:
    """A tenants row, with its quotas, as a Tenant."""
    rows = (await conn.execute(quotas.select().where(quotas.c.tenant == row.name)
                               .order_by(quotas.c.model))).all()
    return Tenant(row.name, row.display_name, row.create_time,
                  tuple(Quota(q.model, int(q.requests_per_minute), float(q.units_per_day))
                        for q in rows))


def key_from_row(row: Any) -> ApiKey:
    """An api_keys row as an ApiKey."""
    return ApiKey(id=row.id, tenant=row.tenant,
                  scopes=frozenset(s for s in row.scopes.split(",") if s),
                  create_time=row.create_time, expire_time=row.expire_time,
                  revoke_time=row.revoke_time, rotate_time=row.rotate_time,
                  description=row.description)


def usage_values(record: UsageRecord) -> dict[str, Any]:
    """A usage row's column values for the record (its UTC day included)."""
    return dict(request_id=record.request_id, tenant=record.tenant, key_id=record.key_id,
                model=record.model, method=record.method, code=record.code,
                units=record.units, unit=record.unit, request_bytes=record.request_bytes,
                response_bytes=record.response_bytes, latency_ms=record.latency_ms,
                time=record.time, day=utc(record.time).date().isoformat(),
                settled=record.settled)


def utc(value: datetime) -> datetime:
    """The time in UTC (a naive one is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def write_token(last: OperationRecord) -> str:
    """The page token of the page after this operation (newest first)."""
    text = json.dumps([utc(last.create_time).isoformat(), last.name])
    return base64.urlsafe_b64encode(text.encode()).decode()


def read_token(token: str) -> tuple[datetime, str]:
    """The (create_time, name) a page token starts after; InvalidArgument if bad."""
    try:
        when, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(when), str(name)
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidArgument("page_token", "not a token this server gave; pass the "
                              "next_page_token of the previous page, or none") from error


def operation_from_row(row: Any) -> OperationRecord:
    """An operations row as an OperationRecord."""
    return OperationRecord(name=row.name, tenant=row.tenant, method=row.method,
                           request=bytes(row.request), operation=bytes(row.operation),
                           done=bool(row.done), create_time=row.create_time,
                           update_time=row.update_time,
                           cancel_requested=bool(row.cancel_requested),
                           expire_time=row.expire_time, extra=dict(row.extra or {}),
                           owner=row.owner, lease_until=row.lease_until)


def usage_range(tenant: str, start: datetime | None, end: datetime | None) -> Any:
    """The condition for the tenant's usage in [start, end)."""
    clauses = [usage.c.tenant == tenant]
    if start is not None:
        clauses.append(usage.c.time >= start)
    if end is not None:
        clauses.append(usage.c.time < end)
    return sa.and_(*clauses)
