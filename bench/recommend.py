"""Recommend at Last.fm scale: latency through the gateway, and training time.

Runs on the data `make eval-recs` leaves in .data/eval-recs/data (17,632 artists,
74,272 training plays, the trained model); without it the table says so.
- Recommend latency, ours: through the gateway, default blend and collaborative only;
  reference: the same call direct to the recommend service (the gateway's share).
- Training, ours: TrainModel end to end (read the log, fit, publish to Qdrant);
  reference: the same fit in process with no store (the publish's share).
"""

from __future__ import annotations

import asyncio
import time

import grpc.aio

from bench import recommend_events
from bench.harness import Latency, Row, load, print_table
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend import fitting
from services.recommend.offline_eval import split_per_user
from tools.devmesh import Endpoints, Mesh
from tools.lastfm import dataset as lastfm
from tools.lastfm.eval_recs import RUN_DIR, train, training_engagements

DURATION_S = 8.0
IN_FLIGHT = 4


async def _latency(target: str, users: list[str], weights: dict[str, float]) -> Latency:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        turn = iter(range(10**9))

        async def call() -> None:
            user = users[next(turn) % len(users)]
            await stub.Recommend(pb.RecommendRequest(user_id=lastfm.user_key(user), limit=10,
                                                     weights=weights), timeout=30)
        return await load(call, IN_FLIGHT, DURATION_S, warmup_calls=20)


async def _train(target: str) -> float:
    async with grpc.aio.insecure_channel(target) as channel:
        return (await train(channel)).duration_s


def serving_rows() -> list[Row]:
    """Latency through the gateway and training time on the Last.fm data (if built)."""
    data_dir = RUN_DIR / "data"
    if not (data_dir / "recommend" / "events.sqlite3").exists():
        return [Row("recommend at Last.fm scale", "-", "not measured", "-", "-",
                    "run `make eval-recs` first: it builds the data this uses")]
    data = lastfm.load()
    split = split_per_user(data.plays)
    users = sorted(split.test, key=int)
    mesh = Mesh(RUN_DIR / "bench", Endpoints.free(), data_dir=data_dir,
                env={"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0"})
    mesh.start()
    rows = []
    try:
        gateway, direct = mesh.endpoints.address("gateway"), mesh.endpoints.address("recommend")
        for name, weights in (("default blend", {}),
                              ("collaborative only", {"content": 0.0, "popularity": 0.0})):
            ours = asyncio.run(_latency(gateway, users, weights))
            ref = asyncio.run(_latency(direct, users, weights))
            rows.append(Row("Recommend p50", f"{name}, {IN_FLIGHT} in flight",
                            f"{ours.p50_ms:.1f} ms", f"{ref.p50_ms:.1f} ms",
                            f"{ours.p50_ms / ref.p50_ms:.2f}x",
                            f"{len(data.artists)} items, {len(users)} users"))
            rows.append(Row("Recommend p99", f"{name}, {IN_FLIGHT} in flight",
                            f"{ours.p99_ms:.1f} ms", f"{ref.p99_ms:.1f} ms",
                            f"{ours.p99_ms / ref.p99_ms:.2f}x",
                            f"{ours.calls_per_s:.0f} calls/s via gateway"))
        train_s = asyncio.run(_train(gateway))
    finally:
        mesh.stop()
    engagements = training_engagements(split)
    started = time.perf_counter()
    fitting.fit(engagements, "ensemble", "bench")
    fit_s = time.perf_counter() - started
    rows.append(Row("training (ensemble)", f"{len(engagements)} plays", f"{train_s:.1f} s",
                    f"{fit_s:.1f} s", f"{train_s / fit_s:.2f}x",
                    "ours: TrainModel (read, fit, publish); ref: the fit alone"))
    return rows


def run() -> list[Row]:
    """Measures and prints the recommend tables (serving and event ingest)."""
    rows = serving_rows()
    print_table("Recommend at Last.fm scale (ours: through the gateway / whole run; "
                "reference: see note)", rows, "ours", "reference")
    return rows + recommend_events.run()


if __name__ == "__main__":
    run()
