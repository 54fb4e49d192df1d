"""`cadenza recommend USER`, `cadenza similar-users USER` and `cadenza train-recs`."""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc
from google.protobuf.json_format import MessageToDict

from cadenza.cli.connection import Connection
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc

TARGETS = ("tempo_bpm", "loudness_db", "brightness_hz", "duration_s")


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `recommend`, `similar-users` and `train` commands."""
    rec = subparsers.add_parser("recommend", parents=[common],
                                help="a personalised list for a user, with reasons")
    rec.add_argument("user_id")
    rec.add_argument("--limit", type=int)
    rec.add_argument("--weight", action="append", default=[], metavar="SOURCE=W",
                     help="override a source weight (collaborative, content, seeds, "
                          "popularity, targets); repeatable")
    rec.add_argument("--seed-track", action="append", default=[])
    rec.add_argument("--seed-artist", action="append", default=[])
    rec.add_argument("--seed-tag", action="append", default=[])
    rec.add_argument("--seed-text", default="")
    for name in TARGETS:
        for kind in ("min", "max", "target"):
            rec.add_argument(f"--{kind}-{name.replace('_', '-')}", type=float)
    rec.add_argument("--target-key", type=int, help="pitch class, 0 = C ... 11 = B")
    rec.add_argument("--target-mode", type=int, help="1 = major, 0 = minor")
    rec.add_argument("--max-per-artist", type=int)
    rec.add_argument("--include-heard", action="store_true")
    rec.set_defaults(func=run_recommend)

    users = subparsers.add_parser("similar-users", parents=[common],
                                  help="listeners whose taste is closest to this user's")
    users.add_argument("user_id")
    users.add_argument("--limit", type=int)
    users.set_defaults(func=run_similar_users)

    train = subparsers.add_parser("train-recs", parents=[common],
                                  help="retrain the collaborative model and wait for it")
    train.add_argument("--algorithm", default="", help="ensemble (default), als, ease, itemknn")
    train.add_argument("--no-wait", action="store_true", help="return once the run started")
    train.set_defaults(func=run_train)


def _request(args: argparse.Namespace) -> pb.RecommendRequest:
    request = pb.RecommendRequest(user_id=args.user_id, include_heard=args.include_heard)
    if args.limit is not None:
        request.limit = args.limit
    if args.max_per_artist is not None:
        request.max_per_artist = args.max_per_artist
    for pair in args.weight:
        name, _, value = pair.partition("=")
        request.weights[name] = float(value)
    request.seeds.track_ids.extend(args.seed_track)
    request.seeds.artists.extend(args.seed_artist)
    request.seeds.tags.extend(args.seed_tag)
    request.seeds.text = args.seed_text
    for name in TARGETS:
        for kind in ("min", "max", "target"):
            value = getattr(args, f"{kind}_{name}")
            if value is not None:
                setattr(request.targets, f"{kind}_{name}", value)
    if args.target_key is not None:
        request.targets.target_key = args.target_key
    if args.target_mode is not None:
        request.targets.target_mode = args.target_mode
    return request


def _fail(error: grpc.RpcError) -> int:
    print(f"{error.code().name}: {error.details()}", file=sys.stderr)
    return 1


def run_recommend(args: argparse.Namespace, conn: Connection) -> int:
    """Prints a user's recommendations with their reasons."""
    stub = recommend_pb2_grpc.RecommendServiceStub(conn.channel)
    try:
        reply = stub.Recommend(_request(args), metadata=conn.metadata, timeout=conn.timeout_s)
    except (grpc.RpcError, ValueError) as error:
        return _fail(error) if isinstance(error, grpc.RpcError) else _usage(error)
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return 0
    start = "cold start (no history): " if reply.cold_start else ""
    print(f"{start}{len(reply.items)} tracks for {args.user_id} "
          f"(model {reply.model_version or 'none yet'})")
    for n, item in enumerate(reply.items, 1):
        print(f"{n:>3}. {item.title or item.track_id} \u2014 {item.artist or '?'} "
              f"[{item.score:.3f}]  {item.reason}")
    return 0


def _usage(error: ValueError) -> int:
    print(f"bad argument: {error}", file=sys.stderr)
    return 2


def run_similar_users(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the users whose listening is most like a user's."""
    stub = recommend_pb2_grpc.RecommendServiceStub(conn.channel)
    request = pb.SimilarUsersRequest(user_id=args.user_id)
    if args.limit is not None:
        request.limit = args.limit
    try:
        reply = stub.SimilarUsers(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return 0
    for user in reply.users:
        print(f"{user.user_id:<32} {user.similarity:.3f}")
    return 0


def run_train(args: argparse.Namespace, conn: Connection) -> int:
    """Trains and publishes a recommendation model."""
    stub = recommend_pb2_grpc.RecommendServiceStub(conn.channel)
    try:
        run = stub.TrainModel(pb.TrainModelRequest(algorithm=args.algorithm),
                              metadata=conn.metadata, timeout=conn.timeout_s).run
        while not args.no_wait and run.state == "running":
            time.sleep(1.0)
            run = stub.GetModelStatus(pb.GetModelStatusRequest(), metadata=conn.metadata,
                                      timeout=conn.timeout_s).latest_run
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps(MessageToDict(run, preserving_proto_field_name=True), indent=2))
    else:
        print(f"run {run.run_id} ({run.algorithm}): {run.state}"
              + (f", model {run.model_version}, {run.users} users x {run.items} items from "
                 f"{run.events_used} engagements in {run.duration_s:.1f} s"
                 if run.state == "succeeded" else f" {run.error}"))
    return 0 if run.state in ("succeeded", "running") else 1
