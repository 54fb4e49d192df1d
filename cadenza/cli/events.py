"""`cadenza event USER TRACK KIND`: record one listening event (play, like, skip ...)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import uuid

import grpc

from cadenza.cli.connection import Connection
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc

# "play" -> EVENT_KIND_PLAY, from the proto so that a new kind shows up here by itself.
KINDS = {name.removeprefix("EVENT_KIND_").lower(): number
         for name, number in pb.EventKind.items() if number != pb.EVENT_KIND_UNSPECIFIED}


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `event` command."""
    event = subparsers.add_parser(
        "event", parents=[common], help="record one listening event for a user",
        description="Records one event; prints 'stored', or 'duplicate' when an event with "
                    "this --event-id was already recorded (safe to repeat).")
    event.add_argument("user_id")
    event.add_argument("track_id")
    event.add_argument("kind", choices=sorted(KINDS))
    event.add_argument("--count", type=int, default=0,
                       help="how many times it happened (aggregated plays; default 1)")
    event.add_argument("--listened-ms", type=int, default=0,
                       help="plays and skips: how long the listener stayed, in ms")
    event.add_argument("--completion", type=float,
                       help="plays and skips: that as a fraction of the track, 0-1")
    event.add_argument("--playlist", default="", help="playlist adds: which playlist")
    event.add_argument("--at", type=_timestamp, metavar="ISO8601",
                       help="when it happened, e.g. 2026-05-01T18:30:00+02:00 (no offset = "
                            "local time; default: now)")
    event.add_argument("--event-id", default="",
                       help="idempotency key; repeat it to retry safely (default: random)")
    event.set_defaults(func=run_event)


def _timestamp(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from error
    return moment.astimezone()  # a naive time is local; keep the offset when given


def event_request(args: argparse.Namespace) -> pb.RecordEventRequest:
    """The RecordEvent request the command line describes."""
    event = pb.Event(event_id=args.event_id or str(uuid.uuid4()), user_id=args.user_id,
                     track_id=args.track_id, kind=KINDS[args.kind],
                     listened_ms=args.listened_ms, playlist_id=args.playlist,
                     count=args.count)
    if args.completion is not None:
        event.completion = args.completion
    if args.at is not None:
        event.occurred_at.FromDatetime(args.at)
    return pb.RecordEventRequest(event=event)


def run_event(args: argparse.Namespace, conn: Connection) -> int:
    """Records one behaviour event."""
    stub = recommend_pb2_grpc.RecommendServiceStub(conn.channel)
    request = event_request(args)
    try:
        reply = stub.RecordEvent(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"event_id": request.event.event_id, "duplicate": reply.duplicate}))
    else:
        print("duplicate" if reply.duplicate else "stored")
    return 0
