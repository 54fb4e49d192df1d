"""One contract suite for the gateway's store, run on embedded SQLite and on a real
PostgreSQL: tenants, hashed keys, usage records merged by request id, operations, two
replicas on one database, and a database that goes away."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cadenza.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from gateway.store import ApiKey, OperationRecord, Quota, Store, Tenant, UsageRecord
from gateway.store.sql import engine_url, open_store
from tests.support.postgres import Postgres

NOW = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """A fresh, empty database on each engine."""
    if request.param == "sqlite":
        return str(tmp_path / "gateway.db")
    server: Postgres = request.getfixturevalue("postgres")
    return server.database_url()


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    opened = await open_store(url)
    yield opened
    await opened.close()


def aware(*times: datetime | None) -> bool:
    return all(t is None or t.utcoffset() == timedelta(0) for t in times)


def key(key_id: str, tenant: str = "acme", expire: datetime | None = None) -> ApiKey:
    return ApiKey(key_id, tenant, frozenset({"search", "admin"}), NOW, expire_time=expire,
                  description="for tests")


def record(request_id: str, settled: bool, time: datetime = NOW, model: str = "m",
           units: float = 0.0, method: str = "/s/M", key_id: str = "key_1",
           tenant: str = "acme") -> UsageRecord:
    return UsageRecord(request_id=request_id, tenant=tenant, key_id=key_id, model=model,
                       method=method, time=time, code="OK" if settled else "",
                       units=units, unit="seconds", settled=settled, request_bytes=10,
                       response_bytes=100 if settled else 0, latency_ms=2.5 if settled else 0)


def operation(i: int, done: bool = False, tenant: str = "acme",
              expire: datetime | None = None) -> OperationRecord:
    return OperationRecord(name=f"operations/{tenant}-{i}", tenant=tenant, method="/s/M",
                           request=b"\x00req", operation=b"\x01op", done=done,
                           create_time=NOW + i * SECOND, update_time=NOW,
                           expire_time=expire, extra={"owner": tenant})


def test_store_urls_map_to_their_engines(tmp_path: pathlib.Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_url("postgres://u@h:5/db") == "postgresql+asyncpg://u@h:5/db"
    assert engine_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    nested = tmp_path / "a" / "b" / "g.db"
    assert engine_url(f"sqlite:///{nested}") == f"sqlite+aiosqlite:///{nested}"
    assert nested.parent.is_dir()
    assert engine_url(str(tmp_path / "c" / "g.db")) == f"sqlite+aiosqlite:///{tmp_path}/c/g.db"
    monkeypatch.chdir(tmp_path)
    assert engine_url("") == "sqlite+aiosqlite:///.data/gateway/gateway.db"
    assert (tmp_path / ".data" / "gateway").is_dir()
    with pytest.raises(InvalidArgument, match="database_url"):
        engine_url("sqlite:relative")


async def test_tenants_and_quotas(store: Store) -> None:
    made = await store.create_tenant(Tenant("acme", "Acme", NOW, (Quota("*", 60, 0.0),)))
    with pytest.raises(AlreadyExists, match="acme"):
        await store.create_tenant(Tenant("acme", "Other", NOW))
    await store.create_tenant(Tenant("beta", "Beta", NOW))
    got = await store.get_tenant("acme")
    assert got == made and got is not None and aware(got.create_time)
    tenant = await store.set_quotas("acme", [Quota("poly", 5, 600.0), Quota("*", 1, 2.0)])
    assert tenant.quotas == (Quota("*", 1, 2.0), Quota("poly", 5, 600.0))
    tenant = await store.set_quotas("acme", [Quota("poly", 7, 1.5)])
    assert tenant.quotas == (Quota("poly", 7, 1.5),)
    assert (await store.get_tenant("acme")).quotas == (Quota("poly", 7, 1.5),)  # type: ignore[union-attr]
    assert [t.name for t in await store.list_tenants()] == ["acme", "beta"]
    assert await store.get_tenant("nobody") is None
    with pytest.raises(NotFound):
        await store.set_quotas("nobody", [])


async def test_keys_are_found_by_hash_rotated_with_grace_and_revoked(store: Store) -> None:
    await store.create_tenant(Tenant("acme", "Acme", NOW))
    with pytest.raises(NotFound, match="nobody"):
        await store.create_key(key("key_x", tenant="nobody"), "h-x")
    made = await store.create_key(key("key_1"), "h-1")
    found = await store.find_key("h-1", NOW)
    assert found == made == await store.get_key("key_1")
    assert found is not None and found.scopes == {"search", "admin"}
    assert found.description == "for tests" and aware(found.create_time)
    assert await store.find_key("unknown", NOW) is None
    assert await store.get_key("key_nope") is None

    rotated = await store.rotate_key("key_1", "h-2", NOW, NOW + 60 * SECOND)
    assert rotated.rotate_time == NOW and aware(rotated.rotate_time)
    assert await store.find_key("h-1", NOW + 30 * SECOND) is not None
    assert await store.find_key("h-1", NOW + 60 * SECOND) is None
    assert await store.find_key("h-2", NOW + timedelta(days=1)) is not None
    await store.rotate_key("key_1", "h-3", NOW, None)
    assert await store.find_key("h-2", NOW) is None
    assert await store.find_key("h-1", NOW) is None  # the older grace ended too
    assert (await store.find_key("h-3", NOW)) is not None
    with pytest.raises(NotFound):
        await store.rotate_key("key_nope", "h-y", NOW, None)

    first = await store.revoke_key("key_1", NOW)
    again = await store.revoke_key("key_1", NOW + timedelta(hours=1))
    assert first.revoke_time == again.revoke_time == NOW
    revoked = await store.find_key("h-3", NOW)
    assert revoked is not None and revoked.revoke_time == NOW  # the caller says why
    with pytest.raises(FailedPrecondition, match="revoked"):
        await store.rotate_key("key_1", "h-4", NOW, None)
    assert await store.find_key("h-4", NOW) is None
    with pytest.raises(NotFound):
        await store.revoke_key("key_nope", NOW)


async def test_listing_keys_hides_revoked_and_expired_ones(store: Store) -> None:
    await store.create_tenant(Tenant("acme", "Acme", NOW))
    await store.create_tenant(Tenant("beta", "Beta", NOW))
    await store.create_key(key("key_live"), "h-live")
    await store.create_key(key("key_old", expire=NOW + SECOND), "h-old")
    await store.create_key(key("key_gone"), "h-gone")
    await store.create_key(key("key_b", tenant="beta"), "h-b")
    await store.revoke_key("key_gone", NOW)
    later = NOW + 2 * SECOND
    assert [k.id for k in await store.list_keys("acme", False, NOW)] == ["key_live", "key_old"]
    assert [k.id for k in await store.list_keys("acme", False, later)] == ["key_live"]
    every = await store.list_keys("acme", True, later)
    assert sorted(k.id for k in every) == ["key_gone", "key_live", "key_old"]
    assert all(aware(k.create_time, k.expire_time, k.revoke_time) for k in every)
    expired = await store.find_key("h-old", later)
    assert expired is not None and expired.expire_time == NOW + SECOND


async def test_a_settled_record_completes_its_reservation_once(store: Store) -> None:
    await store.add_usage([record("a", False)])
    await store.add_usage([record("a", True, units=3.0)])
    await store.add_usage([record("a", True, units=99.0)])  # a replayed write
    await store.add_usage([record("a", False)])  # a late reservation
    await store.add_usage([record("b", False), record("b", True, units=1.0),
                           record("b", True, units=50.0), record("c", False)])
    await store.add_usage([])
    records = {r.request_id: r for r in await store.usage_records("acme", None, None)}
    assert set(records) == {"a", "b", "c"}
    assert (records["a"].units, records["a"].code, records["a"].settled) == (3.0, "OK", True)
    assert (records["b"].units, records["b"].settled) == (1.0, True)
    assert not records["c"].settled and records["c"].code == ""
    assert records["a"].response_bytes == 100 and records["a"].latency_ms == 2.5
    assert records["a"].time == NOW and aware(records["a"].time)
    assert await store.count_usage("acme") == 3
    assert await store.count_usage("beta") == 0


async def test_usage_groups_and_ranges(store: Store) -> None:
    night = datetime(2026, 12, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 4 Dec UTC
    await store.add_usage([
        record("1", True, units=3.0), record("2", True, units=1.0, model="n"),
        record("3", True, units=2.0, time=night, method="/s/N", key_id="key_2"),
        record("4", False, time=NOW + SECOND), record("5", True, units=8.0, tenant="beta")])
    rows = await store.usage("acme", None, None, ["model", "day"])
    assert [(r.model, r.day, r.calls, r.units, r.unit) for r in rows] == [
        ("m", "2026-12-03", 2, 3.0, "seconds"), ("m", "2026-12-04", 1, 2.0, "seconds"),
        ("n", "2026-12-03", 1, 1.0, "seconds")]
    by_day_first = await store.usage("acme", None, None, ["day", "model"])
    assert [(r.day, r.model) for r in by_day_first] == [
        ("2026-12-03", "m"), ("2026-12-03", "n"), ("2026-12-04", "m")]
    by_method = await store.usage("acme", None, None, ["method"])
    assert [(r.method, r.calls, r.unit, r.model) for r in by_method] == [
        ("/s/M", 3, "", ""), ("/s/N", 1, "", "")]
    total = await store.usage("acme", None, None, [])
    assert [(r.calls, r.units, r.request_bytes, r.response_bytes, r.latency_ms)
            for r in total] == [(4, 6.0, 40, 300, 7.5)]
    assert [(r.key_id, r.code, r.calls) for r in await store.usage(
        "acme", None, None, ["key_id", "code"])] == [
        ("key_1", "", 1), ("key_1", "OK", 2), ("key_2", "OK", 1)]
    # [start, end): a record at start counts, one at end does not.
    assert [r.calls for r in await store.usage("acme", NOW, NOW + SECOND, [])] == [2]
    assert [r.calls for r in await store.usage("acme", NOW + SECOND, None, [])] == [2]
    assert await store.usage("acme", NOW + timedelta(days=9), None, []) == []
    assert [r.request_id for r in await store.usage_records("acme", NOW, None)] == [
        "1", "2", "4", "3"]
    assert len(await store.usage_records("acme", None, None, limit=2)) == 2
    with pytest.raises(InvalidArgument, match="group_by"):
        await store.usage("acme", None, None, ["colour"])


async def test_operations_page_cancel_and_expire(store: Store) -> None:
    for i in range(5):
        await store.put_operation(operation(i, done=i < 2, expire=NOW if i < 2 else None))
    await store.put_operation(operation(9, tenant="beta"))
    got = await store.get_operation("operations/acme-3")
    assert got == operation(3)
    assert got is not None and aware(got.create_time, got.update_time, got.expire_time)
    assert await store.get_operation("operations/none") is None

    page, token = await store.list_operations("acme", 2, "")
    assert [r.name for r in page] == ["operations/acme-4", "operations/acme-3"] and token
    await store.put_operation(operation(7))  # started between two pages: no repeat, no skip
    page, token = await store.list_operations("acme", 2, token)
    assert [r.name for r in page] == ["operations/acme-2", "operations/acme-1"] and token
    page, token = await store.list_operations("acme", 2, token)
    assert [r.name for r in page] == ["operations/acme-0"] and token == ""
    whole, end = await store.list_operations("acme", 0, "")
    assert len(whole) == 6 and end == ""
    with pytest.raises(InvalidArgument, match="page_token"):
        await store.list_operations("acme", 2, "not-a-token")

    finished = OperationRecord(**{**operation(4).__dict__, "done": True,
                                  "operation": b"result", "update_time": NOW + SECOND})
    await store.put_operation(finished)
    assert await store.get_operation("operations/acme-4") == finished
    cancelled = await store.request_cancel("operations/acme-3")
    assert cancelled is not None and cancelled.cancel_requested
    assert await store.request_cancel("operations/none") is None
    assert sorted(r.name for r in await store.unfinished_operations()) == [
        "operations/acme-2", "operations/acme-3", "operations/acme-7", "operations/beta-9"]
    assert await store.delete_expired_operations(NOW - SECOND) == 0
    assert await store.delete_expired_operations(NOW + SECOND) == 2  # acme-0, acme-1
    assert await store.get_operation("operations/acme-4") is not None  # no expire_time
    assert await store.delete_operation("operations/acme-4")
    assert not await store.delete_operation("operations/acme-4")


async def test_two_replicas_on_one_database_see_each_others_writes(url: str) -> None:
    opened = await asyncio.gather(*(open_store(url) for _ in range(3)))  # start together
    one, two, three = opened
    try:
        await one.create_tenant(Tenant("acme", "Acme", NOW))
        await one.create_key(key("key_1"), "h-1")
        await two.revoke_key("key_1", NOW)
        found = await one.find_key("h-1", NOW)
        assert found is not None and found.revoke_time == NOW
        await asyncio.gather(one.add_usage([record("r", False)]),
                             two.add_usage([record("r", True, units=1.0)]),
                             three.add_usage([record("r", True, units=2.0)]))
        assert await three.count_usage("acme") == 1
        (row,) = await one.usage("acme", None, None, [])
        assert row.units in (1.0, 2.0)
    finally:
        for opened_store in opened:
            await opened_store.close()


async def test_sqlite_keeps_a_write_ahead_log_shared_by_processes(
        tmp_path: pathlib.Path) -> None:
    store = await open_store(str(tmp_path / "gateway.db"))
    await store.close()
    with sqlite3.connect(tmp_path / "gateway.db") as raw:  # another process's view
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "gateway.db").mkdir()  # a folder where the file should be
    before = set(threading.enumerate())
    with pytest.raises(Unavailable, match="gateway store unavailable"):
        await open_store(str(tmp_path / "gateway.db"))
    # aiosqlite stops a connection that failed to open without waiting for its thread:
    # let it finish while this test's event loop is still open.
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)


async def test_a_stopped_postgres_is_unavailable_then_recovers(postgres: Postgres) -> None:
    url = postgres.database_url()
    store = await open_store(url)
    try:
        await store.create_tenant(Tenant("acme", "Acme", NOW))
        postgres.stop()
        try:
            with pytest.raises(Unavailable, match="gateway store unavailable"):
                await store.get_tenant("acme")
            with pytest.raises(Unavailable, match="gateway store unavailable"):
                await store.add_usage([record("r", True)])
            with pytest.raises(Unavailable, match="gateway store unavailable"):
                await open_store(url)
        finally:
            postgres.start()
        assert await store.get_tenant("acme") is not None
        await store.add_usage([record("r", True)])
        again = await open_store(url)
        assert await again.count_usage("acme") == 1
        await again.close()
    finally:
        await store.close()


async def test_an_operation_is_run_by_one_replica_at_a_time(store: Store) -> None:
    await store.put_operation(operation(1))
    name, lease = "operations/acme-1", NOW + 10 * SECOND
    one = await store.claim_operation(name, "replica-a", NOW, lease)
    assert one is not None and one.owner == "replica-a" and one.lease_until == lease
    assert await store.claim_operation(name, "replica-b", NOW + SECOND, lease) is None
    # The owner writes progress; a cancel set meanwhile by another replica survives it.
    await store.request_cancel(name)
    stored = await store.update_operation(replace(one, operation=b"\x02progress"))
    assert stored is not None and stored.cancel_requested and stored.operation == b"\x02progress"
    # Another replica may write nothing while the claim holds...
    assert await store.update_operation(replace(one, owner="replica-b")) is None
    # ...and takes the operation over once the lease has run out (its owner died).
    two = await store.claim_operation(name, "replica-b", lease + SECOND, lease + 20 * SECOND)
    assert two is not None and two.owner == "replica-b"
    assert await store.update_operation(one) is None  # the old owner's writes now miss
    done = await store.update_operation(replace(two, done=True, expire_time=lease))
    assert done is not None and done.done
    assert await store.claim_operation(name, "replica-c", lease + 30 * SECOND,
                                       lease + 40 * SECOND) is None  # done: nobody runs it
    assert await store.update_operation(two) is None
    assert await store.claim_operation("operations/none", "a", NOW, lease) is None
