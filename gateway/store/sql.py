"""The `Store` on SQLAlchemy Core: embedded SQLite (aiosqlite) by default, PostgreSQL
(asyncpg) when the URL says so. One implementation, so both engines keep one contract.

SQLite runs in WAL mode with synchronous=FULL: a committed usage record survives a
SIGKILL or a power cut, and several gateway processes can share the file. Writes there
take the database lock when they begin (BEGIN IMMEDIATE), so a read-then-write waits its
turn instead of failing on a snapshot another process has moved past.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cadenza.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from gateway.store import (
    GROUPS,
    ApiKey,
    OperationRecord,
    Quota,
    Store,
    Tenant,
    UsageRecord,
    UsageRow,
    schema,
)
from gateway.store.schema import api_keys, key_secrets, operations, quotas, tenants
from gateway.store.schema import usage as usage_table

DEFAULT_PATH = ".data/gateway/gateway.db"
# Held while creating tables, so replicas starting together do not race on PostgreSQL.
_CREATE_LOCK = 42180018
# SQLSTATE classes of a lost or refused connection: 08 (connection exception) and 57P
# (admin shutdown, crash shutdown, cannot connect now).
_DOWN_STATES = ("08", "57P")


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: "" or a path or sqlite URL -> aiosqlite (parent
    folders created), postgres:// or postgresql:// -> asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    if url.startswith("sqlite"):
        _, _, path = url.partition(":///")
        if not path:
            raise InvalidArgument("database_url", f"{url!r} is not sqlite:///PATH")
    else:
        path = url or DEFAULT_PATH
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


async def open_store(url: str) -> Store:
    """Opens the store at url (a SQLite path, or postgresql://...), creating its tables."""
    target = engine_url(url)
    if target.startswith("postgresql"):
        engine = create_async_engine(target, pool_pre_ping=True,
                                     connect_args={"timeout": 10})
    else:
        engine = create_async_engine(target, pool_pre_ping=False)
    store = SqlStore(engine)
    try:
        await store.create()
    except BaseException:
        await engine.dispose()
        raise
    return store


def _is_down(error: BaseException) -> bool:
    if isinstance(error, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        state = getattr(error.orig, "sqlstate", None) or ""
        return str(state).startswith(_DOWN_STATES)
    return False


class SqlStore:
    """Tenants, keys, usage and operations in one SQL database."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Wraps an engine; `open_store` builds it and creates the tables."""
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        if not self._postgres:
            event.listen(engine.sync_engine, "connect", schema.sqlite_connect)
            event.listen(engine.sync_engine, "begin", schema.sqlite_begin)

    async def create(self) -> None:
        """Creates the tables, safely when several replicas start at once."""
        async with self._begin(write=True) as conn:
            if self._postgres:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
            await conn.run_sync(schema.metadata.create_all)

    @asynccontextmanager
    async def _begin(self, write: bool = False) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                if write and not self._postgres:
                    await conn.execution_options(cadenza_immediate=True)
                async with conn.begin():
                    yield conn
        except (DBAPIError, OSError, TimeoutError) as error:
            if not _is_down(error):
                raise
            first = (str(error.orig if isinstance(error, DBAPIError) else error)
                     .strip().splitlines() or [""])[0][:200]
            raise Unavailable(f"gateway store unavailable: {type(error).__name__}: {first} "
                              "(check that the database is running and reachable)") from error

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    # -- tenants --------------------------------------------------------------------

    async def create_tenant(self, tenant: Tenant) -> Tenant:
        """Adds a tenant; AlreadyExists if the name is taken."""
        try:
            async with self._begin(write=True) as conn:
                await conn.execute(tenants.insert().values(
                    name=tenant.name, display_name=tenant.display_name,
                    create_time=tenant.create_time))
                await schema.write_quotas(conn, tenant.name, tenant.quotas)
        except IntegrityError as error:
            raise AlreadyExists(f"a tenant named {tenant.name!r} exists already; "
                                "pick another name") from error
        return tenant

    async def get_tenant(self, name: str) -> Tenant | None:
        """The tenant, or None."""
        async with self._begin() as conn:
            row = (await conn.execute(tenants.select().where(tenants.c.name == name))).first()
            return None if row is None else await schema.tenant_from_row(conn, row)

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""
        async with self._begin() as conn:
            rows = (await conn.execute(tenants.select().order_by(tenants.c.name))).all()
            return [await schema.tenant_from_row(conn, row) for row in rows]

    async def set_quotas(self, name: str, given: Sequence[Quota]) -> Tenant:
        """Replaces the tenant's quotas; NotFound if no such tenant."""
        async with self._begin(write=True) as conn:
            row = (await conn.execute(tenants.select().where(tenants.c.name == name)
                                      .with_for_update())).first()
            if row is None:
                raise NotFound(f"no tenant named {name!r}")
            await conn.execute(quotas.delete().where(quotas.c.tenant == name))
            await schema.write_quotas(conn, name, given)
            return await schema.tenant_from_row(conn, row)

    # -- keys -----------------------------------------------------------------------

    async def create_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        """Adds a key with the hash of its secret; NotFound if the tenant is unknown."""
        async with self._begin(write=True) as conn:
            found = (await conn.execute(
                sa.select(tenants.c.name).where(tenants.c.name == key.tenant))).first()
            if found is None:
                raise NotFound(f"no tenant named {key.tenant!r}; create the tenant first")
            await conn.execute(api_keys.insert().values(
                id=key.id, tenant=key.tenant, scopes=",".join(sorted(key.scopes)),
                create_time=key.create_time, expire_time=key.expire_time,
                revoke_time=key.revoke_time, rotate_time=key.rotate_time,
                description=key.description))
            await conn.execute(key_secrets.insert().values(
                hash=secret_hash, key_id=key.id, valid_until=None))
        return key

    async def find_key(self, secret_hash: str, now: datetime) -> ApiKey | None:
        """The key whose current (or still-in-grace) secret has this hash, revoked and
        expired keys included."""
        query = (sa.select(api_keys).join(key_secrets, key_secrets.c.key_id == api_keys.c.id)
                 .where(key_secrets.c.hash == secret_hash)
                 .where(sa.or_(key_secrets.c.valid_until.is_(None),
                               key_secrets.c.valid_until > now)))
        async with self._begin() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else schema.key_from_row(row)

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        async with self._begin() as conn:
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).first()
        return None if row is None else schema.key_from_row(row)

    async def list_keys(self, tenant: str, include_inactive: bool, now: datetime) -> list[ApiKey]:
        """The tenant's keys, oldest first; revoked and expired ones only if asked."""
        query = api_keys.select().where(api_keys.c.tenant == tenant)
        if not include_inactive:
            query = query.where(api_keys.c.revoke_time.is_(None)).where(sa.or_(
                api_keys.c.expire_time.is_(None), api_keys.c.expire_time > now))
        async with self._begin() as conn:
            rows = (await conn.execute(query.order_by(api_keys.c.create_time,
                                                      api_keys.c.id))).all()
        return [schema.key_from_row(row) for row in rows]

    async def rotate_key(self, key_id: str, secret_hash: str, now: datetime,
                         grace_until: datetime | None) -> ApiKey:
        """Gives the key a new secret; the old one works until grace_until (None: stops
        now). NotFound if unknown; FailedPrecondition if revoked."""
        async with self._begin(write=True) as conn:
            # Writing the key row first locks it: two rotations at once take turns.
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id)
                               .where(api_keys.c.revoke_time.is_(None))
                               .values(rotate_time=now))
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoke_time is not None:
                raise FailedPrecondition(f"API key {key_id} is revoked; create a new key")
            mine = key_secrets.c.key_id == key_id
            # Only the secret just replaced gets a grace; older ones stop now.
            await conn.execute(key_secrets.delete().where(mine).where(
                key_secrets.c.valid_until.is_not(None)))
            if grace_until is None or grace_until <= now:
                await conn.execute(key_secrets.delete().where(mine))
            else:
                await conn.execute(key_secrets.update().where(mine).values(
                    valid_until=grace_until))
            await conn.execute(key_secrets.insert().values(
                hash=secret_hash, key_id=key_id, valid_until=None))
        return schema.key_from_row(row)

    async def revoke_key(self, key_id: str, now: datetime) -> ApiKey:
        """Revokes the key (the first revoke time stays); NotFound if unknown."""
        async with self._begin(write=True) as conn:
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id)
                               .where(api_keys.c.revoke_time.is_(None))
                               .values(revoke_time=now))
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        return schema.key_from_row(row)

    # -- usage ----------------------------------------------------------------------

    async def add_usage(self, records: Sequence[UsageRecord]) -> None:
        """Writes the records in one transaction, durably before returning; a known
        request id is merged (a settled record replaces a reserved one, anything else
        is ignored)."""
        merged: dict[str, UsageRecord] = {}
        for record in records:  # one row per id: an upsert cannot touch a row twice
            held = merged.get(record.request_id)
            if held is None or (record.settled and not held.settled):
                merged[record.request_id] = record
        if not merged:
            return
        statement = self._insert(usage_table)
        fresh = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[usage_table.c.request_id],
            set_={c.name: fresh[c.name] for c in usage_table.c if c.name != "request_id"},
            where=sa.and_(usage_table.c.settled.is_(False), fresh.settled.is_(True)))
        async with self._begin(write=True) as conn:
            await conn.execute(statement, [schema.usage_values(r) for r in merged.values()])

    async def usage(self, tenant: str, start: datetime | None, end: datetime | None,
                    group_by: Sequence[str]) -> list[UsageRow]:
        """The tenant's usage in [start, end), summed per group (names from GROUPS),
        sorted by the group columns in the order given."""
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            raise InvalidArgument("group_by", f"unknown grouping {unknown[0]!r}; use any of "
                                  f"{', '.join(GROUPS)}")
        groups = list(dict.fromkeys(group_by))
        keys = [usage_table.c[g] for g in groups]
        unit = (sa.func.max(usage_table.c.unit) if "model" in groups
                else sa.literal(""))
        query = sa.select(
            *keys, unit.label("unit_"), sa.func.count().label("calls_"),
            sa.func.coalesce(sa.func.sum(usage_table.c.units), 0.0).label("units_"),
            sa.func.coalesce(sa.func.sum(usage_table.c.request_bytes), 0).label("rq_"),
            sa.func.coalesce(sa.func.sum(usage_table.c.response_bytes), 0).label("rs_"),
            sa.func.coalesce(sa.func.sum(usage_table.c.latency_ms), 0.0).label("ms_"),
        ).where(schema.usage_range(tenant, start, end)).group_by(*keys).order_by(*keys)
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        return [UsageRow(**{g: getattr(row, g) for g in groups}, unit=row.unit_ or "",
                         calls=int(row.calls_), units=float(row.units_),
                         request_bytes=int(row.rq_), response_bytes=int(row.rs_),
                         latency_ms=float(row.ms_)) for row in rows if row.calls_]

    async def usage_records(self, tenant: str, start: datetime | None,
                            end: datetime | None, limit: int = 100_000) -> list[UsageRecord]:
        """The tenant's raw records in [start, end), oldest first, at most limit."""
        query = (usage_table.select().where(schema.usage_range(tenant, start, end))
                 .order_by(usage_table.c.time, usage_table.c.request_id).limit(limit))
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        return [UsageRecord(request_id=r.request_id, tenant=r.tenant, key_id=r.key_id,
                            model=r.model, method=r.method, time=r.time, code=r.code,
                            units=float(r.units), unit=r.unit,
                            request_bytes=int(r.request_bytes),
                            response_bytes=int(r.response_bytes),
                            latency_ms=float(r.latency_ms), settled=bool(r.settled))
                for r in rows]

    async def count_usage(self, tenant: str) -> int:
        """How many usage records the tenant has."""
        async with self._begin() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(
                usage_table).where(usage_table.c.tenant == tenant))).scalar_one())

    # -- operations -----------------------------------------------------------------

    async def put_operation(self, record: OperationRecord) -> None:
        """Inserts or replaces the operation."""
        values = dict(name=record.name, tenant=record.tenant, method=record.method,
                      request=record.request, operation=record.operation, done=record.done,
                      cancel_requested=record.cancel_requested,
                      create_time=record.create_time, update_time=record.update_time,
                      expire_time=record.expire_time, extra=dict(record.extra),
                      owner=record.owner, lease_until=record.lease_until)
        statement = self._insert(operations).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[operations.c.name],
            set_={k: statement.excluded[k] for k in values if k != "name"})
        async with self._begin(write=True) as conn:
            await conn.execute(statement)

    async def get_operation(self, name: str) -> OperationRecord | None:
        """The operation, or None."""
        async with self._begin() as conn:
            row = (await conn.execute(operations.select().where(
                operations.c.name == name))).first()
        return None if row is None else schema.operation_from_row(row)

    async def list_operations(self, tenant: str, page_size: int,
                              page_token: str) -> tuple[list[OperationRecord], str]:
        """The tenant's operations, newest first, a page at a time; the token of the next
        page, or "" after the last. Pages are keyed on (create_time, name), so operations
        started meanwhile never repeat or skip one."""
        size = page_size if page_size > 0 else 100
        query = operations.select().where(operations.c.tenant == tenant)
        if page_token:
            after_time, after_name = schema.read_token(page_token)
            query = query.where(sa.or_(
                operations.c.create_time < after_time,
                sa.and_(operations.c.create_time == after_time,
                        operations.c.name < after_name)))
        query = query.order_by(operations.c.create_time.desc(),
                               operations.c.name.desc()).limit(size + 1)
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        page = [schema.operation_from_row(r) for r in rows[:size]]
        token = schema.write_token(page[-1]) if len(rows) > size else ""
        return page, token

    async def request_cancel(self, name: str) -> OperationRecord | None:
        """Marks the operation as asked to cancel; None if unknown."""
        async with self._begin(write=True) as conn:
            await conn.execute(operations.update().where(operations.c.name == name)
                               .values(cancel_requested=True))
            row = (await conn.execute(operations.select().where(
                operations.c.name == name))).first()
        return None if row is None else schema.operation_from_row(row)

    async def unfinished_operations(self) -> list[OperationRecord]:
        """Operations not done (to resume after a restart), oldest first."""
        async with self._begin() as conn:
            rows = (await conn.execute(operations.select().where(
                operations.c.done.is_(False)).order_by(operations.c.create_time))).all()
        return [schema.operation_from_row(r) for r in rows]

    async def claim_operation(self, name: str, owner: str, now: datetime,
                              lease_until: datetime) -> OperationRecord | None:
        """Makes owner the operation's runner until lease_until, if it is not done and
        nobody else holds an unexpired claim; the claimed record, or None."""
        free = sa.or_(operations.c.owner == "", operations.c.owner == owner,
                      operations.c.lease_until.is_(None), operations.c.lease_until < now)
        async with self._begin(write=True) as conn:
            result = await conn.execute(
                operations.update().where(operations.c.name == name)
                .where(operations.c.done.is_(False)).where(free)
                .values(owner=owner, lease_until=lease_until))
            if not result.rowcount:
                return None
            row = (await conn.execute(operations.select().where(
                operations.c.name == name))).first()
        return None if row is None else schema.operation_from_row(row)

    async def update_operation(self, record: OperationRecord) -> OperationRecord | None:
        """Writes the operation's state, lease, done and expiry, if record.owner still
        holds it and it is not done; the record as stored, or None when the claim was lost
        or the operation is gone. cancel_requested is never cleared here: another replica
        may have just set it."""
        async with self._begin(write=True) as conn:
            result = await conn.execute(
                operations.update().where(operations.c.name == record.name)
                .where(operations.c.owner == record.owner)
                .where(operations.c.done.is_(False))
                .values(operation=record.operation, done=record.done,
                        update_time=record.update_time, expire_time=record.expire_time,
                        extra=dict(record.extra), lease_until=record.lease_until))
            if not result.rowcount:
                return None
            row = (await conn.execute(operations.select().where(
                operations.c.name == record.name))).first()
        return None if row is None else schema.operation_from_row(row)

    async def delete_operation(self, name: str) -> bool:
        """Forgets the operation; False if unknown."""
        async with self._begin(write=True) as conn:
            result = await conn.execute(operations.delete().where(operations.c.name == name))
        return bool(result.rowcount)

    async def delete_expired_operations(self, now: datetime) -> int:
        """Forgets done operations whose expire_time has passed; how many."""
        async with self._begin(write=True) as conn:
            result = await conn.execute(operations.delete().where(operations.c.done.is_(True))
                                        .where(operations.c.expire_time <= now))
        return int(result.rowcount or 0)

    async def close(self) -> None:
        """Releases connections."""
        await self._engine.dispose()
