"""`cadenza usage`: a tenant's metered calls from the gateway's store, summed per model,
day, method, key or status code; a table, JSON or CSV. `cadenza models`: the platform's
model catalogue with the tenant's quota and today's use of each model."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, date, datetime

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from cadenza.cli.connection import Connection
from cadenza.gateway.v1 import gateway_pb2 as pb
from cadenza.gateway.v1 import gateway_pb2_grpc

GROUPS = {"model": pb.USAGE_GROUP_MODEL, "day": pb.USAGE_GROUP_DAY,
          "method": pb.USAGE_GROUP_METHOD, "key": pb.USAGE_GROUP_KEY,
          "code": pb.USAGE_GROUP_CODE}
# Row columns for each group name (the key group's column is key_id).
_COLUMNS = {"model": "model", "day": "day", "method": "method", "key": "key_id",
            "code": "code"}
_SUMS = ("calls", "units", "unit", "request_bytes", "response_bytes", "latency_ms")


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `usage` command."""
    parser = subparsers.add_parser("usage", parents=[common],
                                   help="metered usage, summed per model, day, ...")
    parser.add_argument("--tenant", default="",
                        help="default: the key's own tenant (another needs an admin key)")
    parser.add_argument("--from", dest="start", type=moment, default=None,
                        help="from this UTC date or time (ISO, e.g. 2026-12-01 or "
                             "2026-12-01T09:30), inclusive; default: the first call")
    parser.add_argument("--to", dest="end", type=moment, default=None,
                        help="up to this UTC date or time, exclusive; default: now")
    parser.add_argument("--by", type=groups, default=["model", "day"],
                        help=f"comma-separated groups from {', '.join(GROUPS)} "
                             "(default model,day)")
    parser.add_argument("--csv", action="store_true", help="write CSV with a header row")
    parser.set_defaults(func=run)
    models = subparsers.add_parser("models", parents=[common],
                                   help="every model the platform serves, with your quota")
    models.add_argument("--modality", default="",
                        help="only music, text, audio, image, embedding or recommender")
    models.set_defaults(func=run_models)


def moment(text: str) -> datetime:
    """An ISO date (midnight) or date and time, as UTC unless it names its offset."""
    try:
        value = (datetime.combine(date.fromisoformat(text), datetime.min.time())
                 if len(text) == 10 else datetime.fromisoformat(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write an ISO date or time, e.g. 2026-12-01 or 2026-12-01T09:30") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def groups(text: str) -> list[str]:
    """Group names from a comma-separated list, each known and once."""
    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: group by any of {', '.join(GROUPS)}, comma-separated")
    return names


def request_for(args: argparse.Namespace) -> pb.GetUsageRequest:
    """The GetUsage request the arguments describe."""
    request = pb.GetUsageRequest(tenant=args.tenant, group_by=[GROUPS[g] for g in args.by])
    for field, value in (("start_time", args.start), ("end_time", args.end)):
        if value is not None:
            stamp = Timestamp()
            stamp.FromDatetime(value)
            getattr(request, field).CopyFrom(stamp)
    return request


def run(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the usage rows; 1 when the call fails, 2 when --to is not after --from."""
    if args.start and args.end and args.end <= args.start:
        print("--to must be after --from", file=sys.stderr)
        return 2
    stub = gateway_pb2_grpc.GatewayServiceStub(conn.channel)
    try:
        reply = stub.GetUsage(request_for(args), metadata=conn.metadata,
                              timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    columns = [_COLUMNS[g] for g in args.by] + list(_SUMS)
    rows = [[getattr(r, c) for c in columns] for r in reply.rows]
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True), indent=2))
    else:
        _table(reply.tenant, columns, rows)
    return 0


def _table(tenant: str, columns: list[str], rows: list[list[object]]) -> None:
    if not rows:
        print(f"no usage for tenant {tenant} in that range")
        return
    cells = [[_cell(v) for v in row] for row in rows]
    header = [c.upper() for c in columns]
    widths = [max(len(c) for c in column) for column in zip(header, *cells, strict=False)]
    numeric = [c in _SUMS and c != "unit" for c in columns]
    print(f"tenant {tenant}")
    for row in (header, *cells):
        print("  ".join(c.rjust(w) if right else c.ljust(w)
                        for c, w, right in zip(row, widths, numeric, strict=True)).rstrip())


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def run_models(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the model catalogue; 1 when the call fails."""
    stub = gateway_pb2_grpc.GatewayServiceStub(conn.channel)
    try:
        reply = stub.ListModels(pb.ListModelsRequest(modality=args.modality),
                                metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([MessageToDict(m, preserving_proto_field_name=True)
                          for m in reply.models], indent=2))
        return 0
    if not reply.models:
        print(f"no {args.modality + ' ' if args.modality else ''}models")
        return 0
    header = ["NAME", "MODALITY", "VERSION", "STATUS", "UNIT", "QUOTA", "USED TODAY"]
    rows = [[m.name, m.modality, m.version, m.status, m.unit, quota_text(m.quota),
             _cell(m.units_today)] for m in reply.models]
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def quota_text(quota: pb.Quota) -> str:
    """A quota as "60/min, 1000/day"; "unlimited" when neither limit is set."""
    parts = []
    if quota.requests_per_minute:
        parts.append(f"{quota.requests_per_minute}/min")
    if quota.units_per_day:
        parts.append(f"{_cell(quota.units_per_day)}/day")
    return ", ".join(parts) or "unlimited"
