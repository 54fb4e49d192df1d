"""`cadenza tenants ...` and `cadenza keys ...`: manage tenants, their quotas and API keys
(AdminService; needs a key with the admin scope)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from cadenza.cli.connection import Connection
from cadenza.gateway.v1 import gateway_pb2 as pb
from cadenza.gateway.v1 import gateway_pb2_grpc

_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `tenants` and `keys` commands."""
    tenants = subparsers.add_parser("tenants", help="create and list tenants, set quotas")
    actions = tenants.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common], help="add a tenant")
    create.add_argument("name", help="lowercase letters, digits and '-', 2 to 63 characters")
    create.add_argument("--display-name", default="")
    _quota_argument(create, required=False)
    create.set_defaults(func=run_create_tenant)
    actions.add_parser("list", parents=[common], help="every tenant").set_defaults(
        func=run_list_tenants)
    quotas = actions.add_parser("quotas", parents=[common],
                                help="replace a tenant's quotas (those not named are removed)")
    quotas.add_argument("name")
    _quota_argument(quotas, required=True)
    quotas.set_defaults(func=run_set_quotas)

    keys = subparsers.add_parser("keys", help="create, list, rotate and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common],
                                help="a new key; its secret is printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, type=_csv,
                        help="comma-separated: search, recommend, generate, admin")
    create.add_argument("--ttl", type=duration, default=0,
                        help="lifetime, e.g. 30d, 12h, 3600 (seconds); default: never expires")
    create.add_argument("--description", default="")
    create.set_defaults(func=run_create_key)
    listing = actions.add_parser("list", parents=[common], help="a tenant's keys")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--all", action="store_true", help="revoked and expired keys too")
    listing.set_defaults(func=run_list_keys)
    rotate = actions.add_parser("rotate", parents=[common],
                                help="a new secret for a key (printed once)")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=int, default=0,
                        help="seconds the old secret keeps working (0 to 86400; default 0)")
    rotate.set_defaults(func=run_rotate_key)
    revoke = actions.add_parser("revoke", parents=[common], help="the key stops working now")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=run_revoke_key)


def _quota_argument(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--quota", dest="quotas", action="append", type=quota,
                        required=required, default=[], metavar="MODEL:RPM:UNITS_PER_DAY",
                        help="a model's (or '*' for every model) requests per minute and "
                             "units per UTC day, 0 for no limit; repeat for more models")


def quota(text: str) -> pb.Quota:
    """MODEL:RPM:UNITS_PER_DAY as a Quota."""
    model, _, rest = text.rpartition(":")
    model, _, rpm = model.rpartition(":")
    try:
        if not model:
            raise ValueError
        return pb.Quota(model=model, requests_per_minute=int(rpm), units_per_day=float(rest))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write MODEL:RPM:UNITS_PER_DAY, e.g. smollm2-135m-instruct:60:100000 "
            "or '*:120:0'") from None


def duration(text: str) -> int:
    """Seconds from 3600, 90s, 15m, 12h, 30d or 2w."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write seconds or a number with s, m, h, d or w, e.g. 30d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _stub(conn: Connection) -> gateway_pb2_grpc.AdminServiceStub:
    return gateway_pb2_grpc.AdminServiceStub(conn.channel)


def _call(conn: Connection, method: str, request: Message) -> Any:
    return getattr(_stub(conn), method)(request, metadata=conn.metadata,
                                        timeout=conn.timeout_s)


def _fail(error: grpc.RpcError) -> int:
    print(f"{error.code().name}: {error.details()}", file=sys.stderr)
    return 1


def _dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def run_create_tenant(args: argparse.Namespace, conn: Connection) -> int:
    """Adds the tenant and prints it."""
    try:
        reply = _call(conn, "CreateTenant", pb.CreateTenantRequest(
            name=args.name, display_name=args.display_name, quotas=args.quotas))
    except grpc.RpcError as error:
        return _fail(error)
    return _print_tenants([reply.tenant], args.json, single=True)


def run_list_tenants(args: argparse.Namespace, conn: Connection) -> int:
    """Prints every tenant and its quotas."""
    try:
        reply = _call(conn, "ListTenants", pb.ListTenantsRequest())
    except grpc.RpcError as error:
        return _fail(error)
    return _print_tenants(list(reply.tenants), args.json)


def run_set_quotas(args: argparse.Namespace, conn: Connection) -> int:
    """Replaces the tenant's quotas and prints the tenant."""
    try:
        reply = _call(conn, "SetQuotas", pb.SetQuotasRequest(tenant=args.name,
                                                             quotas=args.quotas))
    except grpc.RpcError as error:
        return _fail(error)
    return _print_tenants([reply.tenant], args.json, single=True)


def run_create_key(args: argparse.Namespace, conn: Connection) -> int:
    """Makes the key and prints its secret, once."""
    try:
        reply = _call(conn, "CreateKey", pb.CreateKeyRequest(
            tenant=args.tenant, scopes=args.scopes, ttl_seconds=args.ttl,
            description=args.description))
    except grpc.RpcError as error:
        return _fail(error)
    return _print_secret(reply, args.json)


def run_list_keys(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the tenant's keys (never secrets)."""
    try:
        reply = _call(conn, "ListKeys", pb.ListKeysRequest(tenant=args.tenant,
                                                           include_inactive=args.all))
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps([_dict(k) for k in reply.keys], indent=2))
        return 0
    if not reply.keys:
        print(f"no {'' if args.all else 'active '}keys for tenant {args.tenant}")
        return 0
    rows = [(k.id, ",".join(k.scopes), _time(k.create_time), _time(k.expire_time) or "never",
             _state(k), k.description) for k in reply.keys]
    _table(("ID", "SCOPES", "CREATED", "EXPIRES", "STATE", "DESCRIPTION"), rows)
    return 0


def run_rotate_key(args: argparse.Namespace, conn: Connection) -> int:
    """Gives the key a new secret and prints it, once."""
    try:
        reply = _call(conn, "RotateKey", pb.RotateKeyRequest(key_id=args.key_id,
                                                             grace_seconds=args.grace))
    except grpc.RpcError as error:
        return _fail(error)
    return _print_secret(reply, args.json)


def run_revoke_key(args: argparse.Namespace, conn: Connection) -> int:
    """Revokes the key."""
    try:
        reply = _call(conn, "RevokeKey", pb.RevokeKeyRequest(key_id=args.key_id))
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps(_dict(reply.key), indent=2))
    else:
        print(f"revoked {reply.key.id} (tenant {reply.key.tenant}) at "
              f"{_time(reply.key.revoke_time)}")
    return 0


def _print_secret(reply: pb.CreateKeyResponse | pb.RotateKeyResponse, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"key": _dict(reply.key), "secret": reply.secret}, indent=2))
        return 0
    key = reply.key
    expires = _time(key.expire_time) or "never"
    print(f"key {key.id} for tenant {key.tenant}: scopes {','.join(key.scopes)}, "
          f"expires {expires}")
    print(reply.secret)
    print("This secret will not be shown again: store it now (the gateway keeps only its "
          "hash). Send it as 'authorization: Bearer <secret>'.", file=sys.stderr)
    return 0


def _print_tenants(tenants: Sequence[pb.Tenant], as_json: bool, single: bool = False) -> int:
    if as_json:
        items = [_dict(t) for t in tenants]
        print(json.dumps(items[0] if single else items, indent=2))
        return 0
    rows = [(t.name, t.display_name, _time(t.create_time),
             " ".join(f"{q.model}:{q.requests_per_minute}:{q.units_per_day:g}"
                      for q in t.quotas) or "none") for t in tenants]
    _table(("NAME", "DISPLAY NAME", "CREATED", "QUOTAS (MODEL:RPM:UNITS/DAY)"), rows)
    return 0


def _state(key: pb.ApiKey) -> str:
    if key.HasField("revoke_time"):
        return "revoked"
    if key.HasField("expire_time") and key.expire_time.ToDatetime(UTC) <= datetime.now(UTC):
        return "expired"
    return "active"


def _time(ts: Timestamp) -> str:
    """UTC time to the second; "" for an unset timestamp."""
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
