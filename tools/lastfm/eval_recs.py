"""Offline evaluation of the recommend service on Last.fm HetRec-2k, through the gateway.

Protocol (services/recommend/offline_eval.py): per-user random 80/20 hold-out with a
fixed seed for users with at least 5 artists; each test user's top 10 is ranked over the
whole catalog with their training artists excluded. The service gets the training
split as PLAY events and the artists as metadata-only tracks, trains its default model,
and is asked for every test user's top 10 with its default weights. Popularity,
implicit ALS and EASE run in process on the same split.

`python -m tools.lastfm.eval_recs [--target ADDR] [--users N]` (default: starts its own mesh
in a scratch directory so the Last.fm catalog never mixes with the demo one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc.aio
import numpy as np

from cadenza.recommend.v1 import recommend_pb2 as rpb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.recommend.events import Engagement
from services.recommend.offline_eval import Split, evaluate, split_per_user
from tools.devmesh import Endpoints, Mesh
from tools.lastfm import dataset as lastfm
from tools.lastfm.baselines import baselines

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".data" / "eval-recs"
EVENTS_PER_STREAM = 5000
T = TypeVar("T")


async def for_each(items: list[T], concurrency: int,
                   call: Callable[[T], Awaitable[None]]) -> None:
    """Calls `call` on every item in order, with `concurrency` calls in flight."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def training_engagements(split: Split) -> list[Engagement]:
    """The training plays as the service's training sees them (artist ids as items)."""
    return [Engagement(u, a, plays, False, 0.0)
            for u, by_artist in split.train.items() for a, plays in by_artist.items()]


async def ingest_artists(channel: grpc.aio.Channel, artists: list[lastfm.Artist],
                         concurrency: int) -> None:
    """Ingests every artist into retrieval as a metadata-only track."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)

    async def ingest(artist: lastfm.Artist) -> None:
        meta = tpb.TrackMetadata(track_id=artist.track_id, title=artist.name,
                                 artist=artist.name, tags=artist.tags)
        await stub.IngestTrack(iter([tpb.IngestTrackRequest(
            header=tpb.IngestHeader(metadata=meta))]), timeout=60)

    await for_each(artists, concurrency, ingest)


async def record_plays(channel: grpc.aio.Channel, split: Split) -> int:
    """Records the training plays through RecordEvents; how many the service holds."""
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    events = [rpb.Event(event_id=f"lastfm-{u}-{a}", user_id=lastfm.user_key(u),
                        track_id=f"lastfm-artist-{a}", kind=rpb.EVENT_KIND_PLAY,
                        count=int(plays))
              for u, by_artist in split.train.items() for a, plays in by_artist.items()]
    stored = 0
    for start in range(0, len(events), EVENTS_PER_STREAM):
        chunk = events[start:start + EVENTS_PER_STREAM]

        async def stream(chunk: list[rpb.Event] = chunk) -> AsyncIterator[
                rpb.RecordEventsRequest]:
            for event in chunk:
                yield rpb.RecordEventsRequest(event=event)

        reply = await stub.RecordEvents(stream(), timeout=600)
        if reply.rejected:
            raise SystemExit(f"events rejected: {reply.rejected[:3]}")
        stored += reply.stored + reply.duplicates
    return stored


async def train(channel: grpc.aio.Channel) -> rpb.TrainingRun:
    """Starts a training run and waits for it to finish (exits if it failed)."""
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    run = (await stub.TrainModel(rpb.TrainModelRequest(), timeout=60)).run
    while True:
        await asyncio.sleep(2)
        status = await stub.GetModelStatus(rpb.GetModelStatusRequest(), timeout=30)
        if status.latest_run.run_id == run.run_id and status.latest_run.state != "running":
            if status.latest_run.state != "succeeded":
                raise SystemExit(f"training failed: {status.latest_run.error}")
            return status.latest_run


async def recommend_all(channel: grpc.aio.Channel, users: list[str], concurrency: int,
                        weights: dict[str, float]) -> tuple[dict[str, list[str]], list[float]]:
    """Each user's top 10 from the service, and each call's latency in seconds."""
    stub = recommend_pb2_grpc.RecommendServiceStub(channel)
    ranked: dict[str, list[str]] = {}
    latencies: list[float] = []

    async def recommend(user: str) -> None:
        started = time.perf_counter()
        reply = await stub.Recommend(rpb.RecommendRequest(
            user_id=lastfm.user_key(user), limit=10, weights=weights), timeout=30)
        latencies.append(time.perf_counter() - started)
        ranked[user] = [i.track_id.removeprefix("lastfm-artist-") for i in reply.items]

    await for_each(users, concurrency, recommend)
    return ranked, latencies


async def evaluate_service(target: str, data: lastfm.LastFm, split: Split, users: list[str],
                           args: argparse.Namespace) -> dict[str, object]:
    """Ingests, records, trains and ranks through the service; the timings and scores."""
    report: dict[str, object] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        started = time.perf_counter()
        await ingest_artists(channel, list(data.artists.values()), args.concurrency)
        report["ingest_artists_s"] = time.perf_counter() - started
        print(f"ingested {len(data.artists)} artists in {report['ingest_artists_s']:.0f} s")
        started = time.perf_counter()
        report["events"] = await record_plays(channel, split)
        report["record_events_s"] = time.perf_counter() - started
        print(f"recorded {report['events']} play events in {report['record_events_s']:.0f} s")
        run = await train(channel)
        report["training_s"] = run.duration_s
        print(f"trained {run.algorithm} ({run.model_version}) in {run.duration_s:.1f} s")
        for name, weights in (("Cadenza (default blend)", {}),
                              ("Cadenza (collaborative only)",
                               {"content": 0.0, "popularity": 0.0})):
            ranked, latencies = await recommend_all(channel, users, args.concurrency, weights)
            report[name] = ranked
            ms = np.array(latencies) * 1000
            report[f"{name} latency_ms"] = {"p50": float(np.percentile(ms, 50)),
                                            "p99": float(np.percentile(ms, 99))}
            print(f"{name}: {len(users)} users, p50 {np.percentile(ms, 50):.1f} ms, "
                  f"p99 {np.percentile(ms, 99):.1f} ms (gateway, {args.concurrency} in flight)")
    return report


def print_table(rows: dict[str, dict[str, float]]) -> None:
    """Prints the metric table, one row per model."""
    columns = ["P@10", "R@10", "nDCG@10", "MAP@10", "coverage"]
    width = max(len(n) for n in rows) + 2
    print(f"\n{'model':<{width}}" + "".join(f"{c:>10}" for c in columns))
    for name, row in rows.items():
        print(f"{name:<{width}}" + "".join(f"{row[c]:>10.4f}" for c in columns))


def main() -> int:
    """Runs the evaluation; the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="", help="a running gateway (default: own mesh)")
    parser.add_argument("--users", type=int, default=0, help="evaluate only the first N")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2011)
    args = parser.parse_args()

    data = lastfm.load()
    split = split_per_user(data.plays, seed=args.seed)
    users = sorted(split.test, key=int)[:args.users or None]
    test = {u: split.test[u] for u in users}
    print(f"Last.fm: {len(data.artists)} artists, {len(data.plays)} users, "
          f"{sum(map(len, split.train.values()))} training pairs, {len(users)} test users")

    mesh = None
    target = args.target
    if not target:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        mesh = Mesh(RUN_DIR, Endpoints.free(), env={
            "CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0", "CADENZA_GATEWAY_METRICS_PORT": "-1"})
        mesh.start()
        target = mesh.endpoints.address("gateway")
    try:
        report = asyncio.run(evaluate_service(target, data, split, users, args))
    finally:
        if mesh is not None:
            mesh.stop()

    started = time.perf_counter()
    ranked_baselines = baselines(training_engagements(split), users)
    print(f"baselines fitted and ranked in {time.perf_counter() - started:.0f} s")
    rows = {name: evaluate(ranked, test, len(data.artists)).row()
            for name, ranked in ranked_baselines.items()}
    for name in ("Cadenza (default blend)", "Cadenza (collaborative only)"):
        ranked = report[name]  # user -> track ids, as recommend_all returned it
        assert isinstance(ranked, dict)
        rows[name] = evaluate(ranked, test, len(data.artists)).row()
    print_table(rows)
    summary = {"rows": rows, "users": len(users), "seed": args.seed,
               **{k: v for k, v in report.items() if not k.startswith("Cadenza (") or
                  k.endswith("latency_ms")}}
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"\nresults: {RUN_DIR / 'results.json'}")
    best = max(v["nDCG@10"] for k, v in rows.items() if not k.startswith("Cadenza"))
    ours = rows["Cadenza (default blend)"]["nDCG@10"]
    print(f"default blend nDCG@10 {ours:.4f} vs best baseline {best:.4f} "
          f"({(ours / best - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
