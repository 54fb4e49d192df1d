"""`cadenza search`: by text, by a catalog track or an audio file, with filters and weights."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from cadenza.cli.connection import Connection
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `search` command."""
    p = subparsers.add_parser("search", parents=[common], help="search the catalog")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--text", help="free text over titles, artists, tags, descriptions")
    mode.add_argument("--like-track", metavar="ID", help="tracks that sound like this one")
    mode.add_argument("--like-audio", metavar="FILE", type=pathlib.Path,
                      help="tracks that sound like this 5-60 s clip")
    for name in ("artist", "album", "genre", "tag", "key"):
        p.add_argument(f"--{name}", action="append", default=[],
                       help=f"only this {name} (repeatable)")
    p.add_argument("--mode", choices=("major", "minor"))
    for name in ("year", "tempo", "duration"):
        p.add_argument(f"--{name}-min", type=float)
        p.add_argument(f"--{name}-max", type=float)
    p.add_argument("--weight", action="append", default=[], metavar="GROUP=VALUE",
                   help="feature-group weight for audio similarity (repeatable)")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--page-token", default="")
    p.set_defaults(func=run)


def _float_range(low: float | None, high: float | None) -> pb.FloatRange:
    r = pb.FloatRange()
    if low is not None:
        r.min = low
    if high is not None:
        r.max = high
    return r


def build_request(args: argparse.Namespace) -> pb.SearchTracksRequest:
    """The SearchTracks request the command line describes."""
    year = pb.IntRange()
    if args.year_min is not None:
        year.min = int(args.year_min)
    if args.year_max is not None:
        year.max = int(args.year_max)
    request = pb.SearchTracksRequest(
        filter=pb.TrackFilter(
            artists=args.artist, albums=args.album, genres=args.genre, tags=args.tag,
            keys=args.key, mode=args.mode or "", year=year,
            tempo_bpm=_float_range(args.tempo_min, args.tempo_max),
            duration_s=_float_range(args.duration_min, args.duration_max)),
        page_size=args.limit, page_token=args.page_token)
    for item in args.weight:
        name, sep, value = item.partition("=")
        try:
            request.weights[name] = float(value) if sep else float("nan")
        except ValueError:
            request.weights[name] = float("nan")  # the service names the bad weight
    if args.text is not None:
        request.text = args.text
    elif args.like_track:
        request.like_track_id = args.like_track
    elif args.like_audio:
        request.like_audio.data = args.like_audio.read_bytes()
        request.like_audio.format = args.like_audio.suffix.lstrip(".")
    return request


def run(args: argparse.Namespace, conn: Connection) -> int:
    """Runs a search and prints the ranked tracks."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(conn.channel)
    try:
        reply = stub.SearchTracks(build_request(args), metadata=conn.metadata,
                                  timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot read {args.like_audio}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return 0
    print(f"{'#':>3} {'score':>7}  {'track':<28} {'title':<34} {'artist':<20} why")
    for rank, hit in enumerate(reply.hits, 1):
        meta = hit.track.metadata
        top = sorted(hit.contributions.items(), key=lambda kv: -kv[1])[:2]
        why = ", ".join(f"{name} {value:.2f}" for name, value in top)
        print(f"{rank:>3} {hit.score:>7.3f}  {meta.track_id[:28]:<28} {meta.title[:34]:<34} "
              f"{meta.artist[:20]:<20} {why}")
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")
    return 0
