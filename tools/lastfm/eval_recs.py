"""Offline evaluation of the recommend service on Last.fm HetRec-2k (README, "Evaluation").

Protocol (services/recommend/offline_eval.py): per-user random 80/20 hold-out with a fixed
seed for users with at least 5 artists; each test user's top 10 is ranked over the whole
catalog with their training artists excluded. Every hyperparameter and weight is chosen
on a validation split carved out of the training data (tools/lastfm/selection.py) and
written to services/recommend/selected.json; then a fresh mesh (which reads it) gets the
training split as PLAY events and the artists as metadata-only tracks, trains its default
model and ranks every test user's top 10 through the gateway: the test split is scored
once. Popularity, implicit ALS and EASE run in process on the same split. More seeds
repeat selection and test in process.

`python -m tools.lastfm.eval_recs [--users N] [--seeds 2011,2012,2013]` (its own mesh in
.data/eval-recs, so the Last.fm catalog never mixes with the demo one).
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
from typing import Any, TypeVar

import grpc.aio
import numpy as np

from cadenza.recommend.v1 import recommend_pb2 as rpb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.recommend import fitting, selected
from services.recommend.catalog import RetrievalCatalog
from services.recommend.content import ContentRefresher
from services.recommend.offline_eval import Split, evaluate, split_per_user
from tools.devmesh import Endpoints, Mesh
from tools.lastfm import dataset as lastfm
from tools.lastfm.baselines import baselines
from tools.lastfm.selection import Validation, training_engagements

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".data" / "eval-recs"
EVENTS_PER_STREAM = 5000
# The validation split's seed, from the test split's (a different hold-out of the same
# users' training items).
VALIDATION_SEED_OFFSET = 1000
T = TypeVar("T")


async def for_each(items: list[T], concurrency: int,
                   call: Callable[[T], Awaitable[None]]) -> None:
    """Calls `call` on every item in order, with `concurrency` calls in flight."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


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
                        track_id=lastfm.track_key(a), kind=rpb.EVENT_KIND_PLAY,
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
        ranked[user] = [lastfm.artist_of(i.track_id) for i in reply.items]

    await for_each(users, concurrency, recommend)
    return ranked, latencies


async def evaluate_service(target: str, split: Split, users: list[str],
                           args: argparse.Namespace) -> dict[str, object]:
    """Records the training plays, trains and ranks the test users through the service."""
    report: dict[str, object] = {}
    async with grpc.aio.insecure_channel(target) as channel:
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


async def ingest_catalog(target: str, data: lastfm.LastFm, concurrency: int) -> float:
    """Ingests every artist through the gateway; the seconds it took."""
    async with grpc.aio.insecure_channel(target) as channel:
        started = time.perf_counter()
        await ingest_artists(channel, list(data.artists.values()), concurrency)
        return time.perf_counter() - started


async def select_on_validation(retrieval: str, splits: dict[int, Split],
                               catalog_size: int) -> dict[int, dict[str, Any]]:
    """Per seed: the configuration chosen on a validation split carved out of that seed's
    training data, and its scores on the seed's test split, all in this process."""
    catalog = RetrievalCatalog(retrieval)
    content = ContentRefresher(catalog, 3600.0)
    await content.refresh()
    out: dict[int, dict[str, Any]] = {}
    try:
        for seed, split in splits.items():
            validation = split_per_user(split.train, seed=seed + VALIDATION_SEED_OFFSET)
            print(f"seed {seed}: validation split of {len(validation.test)} users, "
                  f"{sum(map(len, validation.train.values()))} fitting pairs")
            chosen, tried = await Validation(validation, catalog, content,
                                             catalog_size).select()
            print(f"seed {seed}: chose {chosen.as_json()}")
            scorer = Validation(split, catalog, content, catalog_size)
            model = fitting.fit(scorer.fitting_engagements(), "ensemble", "test", chosen.params,
                                chosen.members)
            test = await scorer.score(model, chosen.weights)
            collaborative = {**chosen.weights, "content": 0.0, "popularity": 0.0}
            test_collaborative = await scorer.score(model, collaborative)
            print(f"seed {seed}: test nDCG@10 {test['nDCG@10']:.4f} coverage "
                  f"{test['coverage']:.4f} (in process, scored once)")
            out[seed] = {"chosen": chosen.as_json(), "tried": [c.as_json() for c in tried],
                         "test": test, "test collaborative only": test_collaborative}
    finally:
        await catalog.close()
    return out


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
    parser.add_argument("--users", type=int, default=0, help="evaluate only the first N")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seeds", default="2011,2012,2013",
                        help="split seeds: the first is reported through the service, the "
                             "others show how much the test figures move")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    data = lastfm.load()
    splits = {seed: split_per_user(data.plays, seed=seed) for seed in seeds}
    split = splits[seeds[0]]
    users = sorted(split.test, key=int)[:args.users or None]
    test = {u: split.test[u] for u in users}
    print(f"Last.fm: {len(data.artists)} artists, {len(data.plays)} users, "
          f"{sum(map(len, split.train.values()))} training pairs, {len(users)} test users")

    shutil.rmtree(RUN_DIR, ignore_errors=True)
    env = {"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0", "CADENZA_GATEWAY_METRICS_PORT": "-1"}
    mesh = Mesh(RUN_DIR, Endpoints.free(), env=env)
    mesh.start()
    try:
        ingest_s = asyncio.run(ingest_catalog(mesh.endpoints.address("gateway"), data,
                                              args.concurrency))
        print(f"ingested {len(data.artists)} artists in {ingest_s:.0f} s")
        selections = asyncio.run(select_on_validation(mesh.endpoints.address("retrieval"),
                                                      splits, len(data.artists)))
    finally:
        mesh.stop()
    chosen = selections[seeds[0]]["chosen"]
    selected.PATH.write_text(json.dumps({
        **chosen, "chosen_on": f"make eval-recs: validation split (seed "
                               f"{seeds[0] + VALIDATION_SEED_OFFSET}) of the training data of "
                               f"the Last.fm split seed {seeds[0]}; the test split unseen"},
        indent=1) + "\n")
    print(f"wrote {selected.PATH}")

    # The service as it now ships (selected.json read at start), scored once on the test.
    mesh = Mesh(RUN_DIR, Endpoints.free(), env=env)
    mesh.start()
    try:
        report = asyncio.run(evaluate_service(mesh.endpoints.address("gateway"), split, users,
                                              args))
    finally:
        mesh.stop()
    report["ingest_artists_s"] = ingest_s

    started = time.perf_counter()
    params = fitting.Hyperparameters(**chosen["hyperparameters"])
    ranked_baselines = baselines(training_engagements(split), users, params)
    print(f"baselines fitted and ranked in {time.perf_counter() - started:.0f} s")
    rows = {name: evaluate(ranked, test, len(data.artists)).row()
            for name, ranked in ranked_baselines.items()}
    for name in ("Cadenza (default blend)", "Cadenza (collaborative only)"):
        ranked = report[name]  # user -> track ids, as recommend_all returned it
        assert isinstance(ranked, dict)
        rows[name] = evaluate(ranked, test, len(data.artists)).row()
    print(f"\ntest split (seed {seeds[0]}), scored once after selection on validation:")
    print_table(rows)
    print("\ntest split per seed (in process, the service's code; each seed selects on its "
          "own validation split):")
    print_table({f"seed {seed} default blend": s["test"] for seed, s in selections.items()}
                | {f"seed {seed} collaborative only": s["test collaborative only"]
                   for seed, s in selections.items()})
    summary = {"rows": rows, "users": len(users), "seeds": seeds, "selections": selections,
               **{k: v for k, v in report.items() if not k.startswith("Cadenza (") or
                  k.endswith("latency_ms")}}
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"\nresults: {RUN_DIR / 'results.json'}")
    best = max(v["nDCG@10"] for k, v in rows.items() if not k.startswith("Cadenza"))
    ours = rows["Cadenza (default blend)"]
    print(f"default blend nDCG@10 {ours['nDCG@10']:.4f} (coverage {ours['coverage']:.4f}) vs "
          f"best baseline {best:.4f} ({(ours['nDCG@10'] / best - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
