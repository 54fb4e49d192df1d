"""API keys, scopes and quotas on both public paths (Envoy asking the gateway, and the
gateway's own port), over the gateway's real store: every refusal has its status and a
message that says what to fix, and never says whether another tenant exists."""

from __future__ import annotations

import asyncio
import http.client
import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2

from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.access import CALL_ID_HEADER, UNAUTHENTICATED_MESSAGE
from gateway.store import Quota, Store
from gateway.store.sql import open_store
from tests.gateway.public_path import Mesh, start
from tests.support.tenants import add_key, add_tenant, bearer

PATHS = ("envoy", "forwarder")
REQUEST = retrieval_pb2.GetTrackRequest(track_id="t1")


@pytest.fixture(params=PATHS)
async def keyed(request: pytest.FixtureRequest,
                tmp_path: pathlib.Path) -> AsyncIterator[tuple[Mesh, Store]]:
    mesh = await start(str(request.param), tmp_path, keys=True)
    store = await open_store(str(tmp_path / "gateway.db"))
    yield mesh, store
    await store.close()
    await mesh.close()


async def refusal(mesh: Mesh, metadata: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTrack(REQUEST, timeout=5, metadata=metadata)
    return caught.value


async def test_bad_keys_are_unauthenticated_with_what_to_fix(
        keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme")
    _, expired = await add_key(store, "acme", ttl_s=-1)
    revoked_key, revoked = await add_key(store, "acme")
    await store.revoke_key(revoked_key.id, datetime.now(UTC))
    cases = {
        (): UNAUTHENTICATED_MESSAGE,
        (("authorization", "Basic abc"),): UNAUTHENTICATED_MESSAGE,
        bearer("not-a-key"): "malformed API key",
        bearer("cdz_" + "A" * 43): "unknown API key",
        bearer(expired): "expired at",
        bearer(revoked): "was revoked at",
    }
    for metadata, message in cases.items():
        error = await refusal(mesh, metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert message in (error.details() or ""), (metadata, error.details())
        assert "acme" not in (error.details() or "")  # no tenant is named


async def test_a_key_of_another_tenant_reads_only_its_own_usage(
        keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    _, acme = await add_key(store, "acme")
    stub = gateway_pb2_grpc.GatewayServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetUsage(gateway_pb2.GetUsageRequest(tenant="globex"), timeout=5,
                            metadata=bearer(acme))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetUsage(gateway_pb2.GetUsageRequest(tenant="nobody"), timeout=5,
                            metadata=bearer(acme))
    # The same answer whether the other tenant exists or not.
    assert unknown.value.code() == caught.value.code()
    assert unknown.value.details() == caught.value.details()


async def test_a_key_without_the_scope_is_permission_denied(keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme")
    key, secret = await add_key(store, "acme", scopes=["generate"])
    error = await refusal(mesh, bearer(secret))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"API key {key.id} lacks the 'search' scope" in (error.details() or "")


async def test_revoke_and_rotate_take_effect_on_the_next_call(
        keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme")
    key, secret = await add_key(store, "acme")
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    await stub.GetTrack(REQUEST, timeout=5, metadata=bearer(secret))
    from gateway import keys

    fresh = keys.new_secret()
    await store.rotate_key(key.id, keys.hash_secret(fresh), datetime.now(UTC), None)
    assert (await refusal(mesh, bearer(secret))).code() == grpc.StatusCode.UNAUTHENTICATED
    await stub.GetTrack(REQUEST, timeout=5, metadata=bearer(fresh))
    await store.revoke_key(key.id, datetime.now(UTC))
    assert (await refusal(mesh, bearer(fresh))).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_over_quota_is_resource_exhausted_with_quota_failure_and_retry_info(
        keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme", [Quota("*", requests_per_minute=3)])
    _, secret = await add_key(store, "acme")
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    admitted = refused = 0
    error = None
    for _ in range(6):
        try:
            await stub.GetTrack(REQUEST, timeout=5, metadata=bearer(secret))
            admitted += 1
        except grpc.aio.AioRpcError as caught:
            refused += 1
            error = caught
    # A minute window can roll over between calls: at most 3 per window, and the calls
    # after the third in one window are refused.
    assert refused >= 1 and admitted >= 3
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "acme" in (error.details() or "") and "retry in" in (error.details() or "")
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata() or ())["grpc-status-details-bin"])
    failure, retry = error_details_pb2.QuotaFailure(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(failure) and status.details[1].Unpack(retry)
    assert "requests_per_minute" in failure.violations[0].subject
    assert 0 < retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9 <= 60


async def test_every_admitted_call_has_one_usage_record_under_its_call_id(
        keyed: tuple[Mesh, Store]) -> None:
    mesh, store = keyed
    await add_tenant(store, "acme")
    _, secret = await add_key(store, "acme")
    stub = retrieval_pb2_grpc.RetrievalServiceStub(mesh.channel)
    ids = []
    for _ in range(3):
        call = stub.GetTrack(REQUEST, timeout=5, metadata=bearer(secret))
        await call
        ids.append(dict(await call.initial_metadata())[CALL_ID_HEADER])
    assert len(set(ids)) == 3
    usage = gateway_pb2_grpc.GatewayServiceStub(mesh.channel)
    request = gateway_pb2.GetUsageRequest(group_by=[gateway_pb2.USAGE_GROUP_METHOD,
                                                    gateway_pb2.USAGE_GROUP_CODE])
    rows: list[gateway_pb2.UsageRow] = []
    for _ in range(100):  # Envoy's access log settles in batches
        rows = list((await usage.GetUsage(request, timeout=5, metadata=bearer(secret))).rows)
        if rows and all(r.code for r in rows) and sum(r.calls for r in rows) == 3:
            break
        await asyncio.sleep(0.05)
    assert [(r.method, r.code, r.calls) for r in rows] == [
        ("/cadenza.retrieval.v1.RetrievalService/GetTrack", "OK", 3)]
    assert await store.count_usage("acme") == 3


@pytest.mark.parametrize("path", ["envoy"])
async def test_rest_callers_over_quota_get_429_and_retry_after(
        path: str, tmp_path: pathlib.Path) -> None:
    mesh = await start(path, tmp_path, keys=True)
    store = await open_store(str(tmp_path / "gateway.db"))
    try:
        await add_tenant(store, "acme", [Quota("*", requests_per_minute=1)])
        _, secret = await add_key(store, "acme")
        assert mesh.edge is not None
        host, _, port = mesh.edge.address.rpartition(":")

        def get() -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/v1/tracks/t1", headers={"authorization": f"Bearer {secret}"})
            reply = conn.getresponse()
            return reply.status, dict(reply.getheaders()), reply.read()

        statuses = [await asyncio.to_thread(get) for _ in range(3)]
        refused = [s for s in statuses if s[0] == 429]
        assert refused, [s[0] for s in statuses]
        _, headers, body = refused[0]
        assert int(headers["retry-after"]) >= 1
        assert b"quota exceeded for tenant 'acme'" in body
    finally:
        await store.close()
        await mesh.close()


