"""The `cadenza tenants`, `keys`, `usage`, and `models` commands, run as a
user runs them, against a real gRPC server: AdminService over a real SQLite store, and
stand-in GatewayService / Operations servicers with fixed answers (the CLI's part is the
request it builds and what it prints)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import pathlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
import pytest

from cadenza.gateway.v1 import gateway_pb2 as pb
from cadenza.gateway.v1 import gateway_pb2_grpc
from cadenza.kit.server import App, Binding, serve_in_process
from gateway.admin import AdminServicer
from gateway.caller import Caller, caller
from gateway.keys import hash_secret
from gateway.store import Store
from gateway.store.sql import open_store

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "admin-token"


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


USAGE_ROWS = [
    pb.UsageRow(model="cadenza-poly", day="2026-12-01", calls=3, units=42.5, unit="seconds",
                request_bytes=300, response_bytes=9000, latency_ms=120.0),
    pb.UsageRow(model="smollm2-135m-instruct", day="2026-12-01", calls=2, units=512,
                unit="tokens", request_bytes=80, response_bytes=2048, latency_ms=40.5),
]
MODELS = [
    pb.CatalogModel(name="cadenza-poly", modality="music", version="3", status="READY",
                    unit="seconds", quota=pb.Quota(model="*", requests_per_minute=60,
                                                   units_per_day=600), units_today=42.5),
    pb.CatalogModel(name="smollm2-135m-instruct", modality="text", version="1",
                    status="LOADING", unit="tokens", quota=pb.Quota(model="*")),
]


@dataclass
class Gateway(gateway_pb2_grpc.GatewayServiceServicer):
    """GetUsage and ListModels with fixed rows; each request is recorded so a test can
    check what the CLI sent."""
    requests: list[Any] = field(default_factory=list)

    async def GetUsage(self, request: pb.GetUsageRequest,
                       context: Any) -> pb.GetUsageResponse:
        self.requests.append(request)
        return pb.GetUsageResponse(tenant=request.tenant or "acme", rows=USAGE_ROWS)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: Any) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[
            m for m in MODELS if request.modality in ("", m.modality)])


@dataclass
class Server:
    store: Store
    gateway: Gateway
    target: str


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[Server]:
    store = await open_store(str(tmp_path / "g.db"))
    admin = AdminServicer(store)
    gateway = Gateway()
    running = await serve_in_process(
        App(bindings=[
            Binding("cadenza.gateway.v1.AdminService", lambda s: gateway_pb2_grpc.
                    add_AdminServiceServicer_to_server(admin, s)),
            Binding("cadenza.gateway.v1.GatewayService", lambda s: gateway_pb2_grpc.
                    add_GatewayServiceServicer_to_server(gateway, s)),
        ]),
        interceptors=[AdminCaller()])
    yield Server(store, gateway, f"127.0.0.1:{running.port}")
    await running.server.stop(None)
    await store.close()


async def cli(server: Server, *args: str, key: str = ADMIN_TOKEN) -> tuple[int, str, str]:
    """Runs `cadenza ARGS` in a subprocess (the server shares this event loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cadenza.cli.main", *args, "--insecure", "--target",
        server.target, "--api-key", key, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tenants_create_list_and_quotas(server: Server) -> None:
    code, out, err = await cli(server, "tenants", "create", "acme", "--display-name",
                               "Acme Corp", "--quota", "*:60:1000")
    assert code == 0, err
    assert "acme" in out and "Acme Corp" in out and "*:60:1000" in out
    code, _, err = await cli(server, "tenants", "create", "acme")
    assert code == 1 and err.startswith("ALREADY_EXISTS:")
    code, _, err = await cli(server, "tenants", "create", "Acme Corp")
    assert code == 1 and err.startswith("INVALID_ARGUMENT:") and "lowercase" in err
    code, _, err = await cli(server, "tenants", "create", "beta", "--quota", "sixty")
    assert code == 2 and "MODEL:RPM:UNITS_PER_DAY" in err

    code, out, err = await cli(server, "tenants", "quotas", "acme", "--quota",
                               "smollm2-135m-instruct:10:50000", "--quota", "*:5:0")
    assert code == 0, err
    stored = await server.store.get_tenant("acme")
    assert stored is not None
    assert {(q.model, q.requests_per_minute, q.units_per_day) for q in stored.quotas} == {
        ("smollm2-135m-instruct", 10, 50000.0), ("*", 5, 0.0)}

    await cli(server, "tenants", "create", "beta")
    code, out, err = await cli(server, "tenants", "list", "--json")
    assert code == 0, err
    assert [t["name"] for t in json.loads(out)] == ["acme", "beta"]
    code, out, err = await cli(server, "tenants", "list")
    assert code == 0, err
    assert out.splitlines()[0].startswith("NAME") and "beta" in out

    code, _, err = await cli(server, "tenants", "list", key="not-admin")
    assert code == 1 and err.startswith("PERMISSION_DENIED:") and "'admin' scope" in err


async def test_keys_create_list_rotate_revoke(server: Server) -> None:
    assert (await cli(server, "tenants", "create", "acme"))[0] == 0
    code, out, err = await cli(server, "keys", "create", "--tenant", "acme", "--scopes",
                               "search,generate", "--ttl", "30d", "--description", "ci")
    assert code == 0, err
    secret = next(line for line in out.splitlines() if line.startswith("cdz_"))
    assert "will not be shown again" in err
    key = await server.store.find_key(hash_secret(secret), datetime.now(UTC))
    assert key is not None and key.scopes == frozenset({"search", "generate"})
    assert key.expire_time is not None
    assert 29 * 86400 < (key.expire_time - key.create_time).total_seconds() <= 30 * 86400
    code, _, err = await cli(server, "keys", "create", "--tenant", "acme", "--scopes", "serch")
    assert code == 1 and "unknown scopes ['serch']" in err

    code, out, err = await cli(server, "keys", "list", "--tenant", "acme")
    assert code == 0, err
    assert key.id in out and "search,generate" in out and "active" in out
    assert secret not in out

    code, out, err = await cli(server, "keys", "rotate", key.id, "--grace", "60", "--json")
    assert code == 0, err
    rotated = json.loads(out)
    assert rotated["key"]["id"] == key.id and rotated["secret"] != secret
    now = datetime.now(UTC)
    assert await server.store.find_key(hash_secret(rotated["secret"]), now) is not None
    assert await server.store.find_key(hash_secret(secret), now) is not None  # in grace

    code, out, err = await cli(server, "keys", "revoke", key.id)
    assert code == 0, err
    assert f"revoked {key.id}" in out
    code, _, err = await cli(server, "keys", "revoke", key.id)
    assert code == 0, err
    code, out, err = await cli(server, "keys", "list", "--tenant", "acme", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, err = await cli(server, "keys", "list", "--tenant", "acme", "--all")
    assert code == 0 and key.id in out and "revoked" in out
    code, _, err = await cli(server, "keys", "revoke", "key_0000")
    assert code == 1 and err.startswith("NOT_FOUND:")


async def test_usage_csv_has_a_header_and_the_rows(server: Server) -> None:
    code, out, err = await cli(server, "usage", "--tenant", "acme", "--from", "2026-12-01",
                               "--to", "2026-12-02T12:00", "--by", "model,day", "--csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["model", "day", "calls", "units", "unit", "request_bytes",
                       "response_bytes", "latency_ms"]
    assert rows[1:] == [
        ["cadenza-poly", "2026-12-01", "3", "42.5", "seconds", "300", "9000", "120.0"],
        ["smollm2-135m-instruct", "2026-12-01", "2", "512.0", "tokens", "80", "2048", "40.5"]]
    request = server.gateway.requests[-1]
    assert request.tenant == "acme"
    assert list(request.group_by) == [pb.USAGE_GROUP_MODEL, pb.USAGE_GROUP_DAY]
    assert request.start_time.ToDatetime(UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert request.end_time.ToDatetime(UTC) == datetime(2026, 12, 2, 12, tzinfo=UTC)

    code, out, err = await cli(server, "usage")
    assert code == 0, err
    assert "tenant acme" in out and "MODEL" in out and "42.5" in out
    code, _, err = await cli(server, "usage", "--by", "colour")
    assert code == 2 and "group by any of model, day, method, key, code" in err
    code, _, err = await cli(server, "usage", "--from", "yesterday")
    assert code == 2 and "ISO date" in err


async def test_models_lists_the_catalogue_with_quota_and_use(server: Server) -> None:
    code, out, err = await cli(server, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODALITY", "VERSION", "STATUS", "UNIT", "QUOTA",
                                "USED", "TODAY"]
    assert lines[1].split() == ["cadenza-poly", "music", "3", "READY", "seconds",
                                "60/min,", "600/day", "42.5"]
    assert "unlimited" in lines[2] and "LOADING" in lines[2]
    code, out, err = await cli(server, "models", "--modality", "text", "--json")
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)] == ["smollm2-135m-instruct"]
