"""Recommend at Last.fm scale: latency through the edge, and training time.

Runs on the data `make eval-recs` leaves in .data/eval-recs/data (17,632 artists,
74,272 training plays, the trained model); without it the table says so.
- Recommend latency through the edge (Envoy: the public entry, keys off), default blend
  and collaborative only, 4 and 16 calls in flight, cycling over the 1,877 test users.
  Ours: the model's arrays and the catalogue copy in memory, once computing every call
  (list cache off) and once for repeat calls (the cache warmed by one call per user
  first). Reference: the path before (model rows from Qdrant and an example search in
  retrieval on every call).
- Each user's first call after a publish (ours: default lists warmed ahead; reference:
  not) and each user's call 100 ms after their own new like (ours: the list computed
  again right after the event; reference: not), half the users at 4 in flight and half
  at 16.
- Training, ours: TrainModel end to end (read the log, fit, publish to Qdrant);
  reference: the same fit in process with no store (the publish's share).
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import tempfile
import time
import urllib.request

import grpc.aio

from bench import recommend_events
from bench.harness import Latency, Row, load, load_each, print_table
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend import fitting
from services.recommend.offline_eval import split_per_user
from tools.devmesh import Endpoints, Mesh
from tools.lastfm import dataset as lastfm
from tools.lastfm.eval_recs import RUN_DIR, train
from tools.lastfm.selection import training_engagements

DURATION_S = 8.0
IN_FLIGHT = (4, 16)
BLENDS = {"default blend": {}, "collaborative only": {"content": 0.0, "popularity": 0.0}}
# The serving paths compared, as recommend settings. The reference is the path before
# the in-memory work: the model's rows and factors read from Qdrant and the content
# signal asked of retrieval on every call.
PER_REQUEST = {"CADENZA_RECOMMEND_MODEL_IN_MEMORY": "false",
               "CADENZA_RECOMMEND_CONTENT_IN_MEMORY": "false",
               "CADENZA_RECOMMEND_CACHED_LISTS": "0"}
COMPUTED = {"CADENZA_RECOMMEND_CACHED_LISTS": "0"}
CACHED: dict[str, str] = {}


async def _latency(target: str, users: list[str], weights: dict[str, float],
                   in_flight: int, warm_every_user: bool = False) -> Latency:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        turn = iter(range(10**9))

        async def call() -> None:
            user = users[next(turn) % len(users)]
            await stub.Recommend(pb.RecommendRequest(user_id=lastfm.user_key(user), limit=10,
                                                     weights=weights), timeout=30)
        return await load(call, in_flight, DURATION_S,
                          warmup_calls=len(users) if warm_every_user else 20)


async def _train(target: str) -> float:
    async with grpc.aio.insecure_channel(target) as channel:
        return (await train(channel)).duration_s


def _measure(data_dir: pathlib.Path, env: dict[str, str], users: list[str],
             warm: bool) -> dict[tuple[str, int], Latency]:
    """Latency through the edge (Envoy, where users call) per blend and in-flight count,
    on one mesh."""
    mesh = Mesh(RUN_DIR / "bench", Endpoints.free(), data_dir=data_dir,
                env={"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0", **env})
    mesh.start()
    try:
        edge = mesh.endpoints.public
        return {(blend, n): asyncio.run(_latency(edge, users, weights, n, warm))
                for blend, weights in BLENDS.items() for n in IN_FLIGHT}
    finally:
        mesh.stop()


# After a publish every cached list is stale. Ours: the active users' default lists are
# computed ahead (warm.py); reference: the same mesh with warming off, where each user's
# first call after the publish is computed.
WARMED: dict[str, str] = {"CADENZA_RECOMMEND_HOLDOUT_USERS": "0"}
NOT_WARMED = {**WARMED, "CADENZA_RECOMMEND_WARM_LISTS": "0"}


async def _each_once(stub: recommend_pb2_grpc.RecommendServiceAsyncStub, users: list[str],
                     in_flight: int) -> Latency:
    """Every user's default list (limit 10) once, `in_flight` calls at a time."""
    return await load_each(lambda user: stub.Recommend(_default_request(user), timeout=30),
                           users, in_flight)


def _default_request(user: str) -> pb.RecommendRequest:
    """The user's default list, limit 10."""
    return pb.RecommendRequest(user_id=lastfm.user_key(user), limit=10)


async def _warm_round_ended(metrics_url: str, lists: int, timeout_s: float = 300.0) -> None:
    """Waits until recommend has warmed `lists` lists since it started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(metrics_url, timeout=5).read().decode())
        for line in text.splitlines():
            if line.startswith("cadenza_recommend_warmed_lists_total "):
                if float(line.split()[1]) >= lists:
                    return
        await asyncio.sleep(1.0)
    raise SystemExit(f"recommend warmed fewer than {lists} lists in {timeout_s:.0f} s")


def _after_publish(data_dir: pathlib.Path, env: dict[str, str],
                   users: list[str]) -> dict[int, Latency]:
    """Each user's first default call after a publish, half the users at each in-flight
    count, with every user active before it (called once: engagements in memory)."""
    mesh = Mesh(RUN_DIR / "bench", Endpoints.free(), data_dir=data_dir,
                env={"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0", **env})
    mesh.start()
    warming = "CADENZA_RECOMMEND_WARM_LISTS" not in env
    metrics_url = f"http://127.0.0.1:{mesh.endpoints.metrics_ports['recommend']}/metrics"

    async def run() -> dict[int, Latency]:
        async with grpc.aio.insecure_channel(mesh.endpoints.public) as channel, \
                grpc.aio.insecure_channel(mesh.endpoints.address("gateway")) as admin:
            stub = recommend_pb2_grpc.RecommendServiceStub(channel)
            await _each_once(stub, users, 4)
            await train(admin)  # a publish: every cached list is stale now
            if warming:
                await _warm_round_ended(metrics_url, len(users))
            halves = (users[::2], users[1::2])
            return {n: await _each_once(stub, half, n)
                    for n, half in zip(IN_FLIGHT, halves, strict=True)}

    try:
        return asyncio.run(run())
    finally:
        mesh.stop()


# A user's own new event changes their list's key. Ours: their default list is computed
# again right after the event is stored (warm.py); reference: that refresh off, so the
# call after the like is computed.
REFRESHED: dict[str, str] = {"CADENZA_RECOMMEND_HOLDOUT_USERS": "0"}
NOT_REFRESHED = {**REFRESHED, "CADENZA_RECOMMEND_REFRESH_AFTER_EVENTS": "false"}
LIKE_TO_CALL_S = 0.1  # from the like's acknowledgement to the user's next call


def _after_event(data_dir: pathlib.Path, env: dict[str, str],
                 users: list[str]) -> dict[int, Latency]:
    """Each user's default call LIKE_TO_CALL_S after they like the first track of their
    list (the like and the pause untimed), half the users at each in-flight count. On a
    copy of the data: the likes are stored."""
    with tempfile.TemporaryDirectory(dir=RUN_DIR) as scratch:
        copy = pathlib.Path(scratch) / "data"
        shutil.copytree(data_dir, copy)
        mesh = Mesh(RUN_DIR / "bench", Endpoints.free(), data_dir=copy,
                    env={"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0", **env})
        mesh.start()

        async def run() -> dict[int, Latency]:
            async with grpc.aio.insecure_channel(mesh.endpoints.public) as channel:
                stub = recommend_pb2_grpc.RecommendServiceStub(channel)
                tops: dict[str, str] = {}

                async def default_list(user: str) -> None:
                    reply = await stub.Recommend(_default_request(user), timeout=30)
                    if reply.items and user not in tops:
                        tops[user] = reply.items[0].track_id

                async def like(user: str) -> None:
                    await stub.RecordEvent(pb.RecordEventRequest(event=pb.Event(
                        event_id=f"bench-like-{user}", user_id=lastfm.user_key(user),
                        track_id=tops[user], kind=pb.EVENT_KIND_LIKE)), timeout=30)
                    await asyncio.sleep(LIKE_TO_CALL_S)

                await load_each(default_list, users, 4)  # every user asked lately
                liking = [u for u in users if u in tops]
                halves = (liking[::2], liking[1::2])
                return {n: await load_each(default_list, half, n, untimed=like)
                        for n, half in zip(IN_FLIGHT, halves, strict=True)}

        try:
            return asyncio.run(run())
        finally:
            mesh.stop()


def serving_rows() -> list[Row]:
    """Latency through the gateway on each serving path, and training time (if built)."""
    data_dir = RUN_DIR / "data"
    if not (data_dir / "recommend" / "events.sqlite3").exists():
        return [Row("recommend at Last.fm scale", "-", "not measured", "-", "-",
                    "run `make eval-recs` first: it builds the data this uses")]
    data = lastfm.load()
    split = split_per_user(data.plays)
    users = sorted(split.test, key=int)
    before = _measure(data_dir, PER_REQUEST, users, warm=False)
    computed = _measure(data_dir, COMPUTED, users, warm=False)
    cached = _measure(data_dir, CACHED, users, warm=True)
    rows = []
    for (blend, n), ref in before.items():
        for name, ours in (("computed every call", computed[blend, n]),
                           ("repeat call, list cached", cached[blend, n])):
            rows.append(Row("Recommend p50 / p99", f"{blend}, {n} in flight, {name}",
                            f"{ours.p50_ms:.1f} / {ours.p99_ms:.1f} ms",
                            f"{ref.p50_ms:.1f} / {ref.p99_ms:.1f} ms",
                            f"{ours.p50_ms / ref.p50_ms:.2f}x",
                            f"{ours.calls_per_s:.0f} vs {ref.calls_per_s:.0f} calls/s"))
    warmed = _after_publish(data_dir, WARMED, users)
    not_warmed = _after_publish(data_dir, NOT_WARMED, users)
    for n in IN_FLIGHT:
        ours, ref = warmed[n], not_warmed[n]
        rows.append(Row("Recommend p50 / p99", f"default blend, {n} in flight, each user's "
                        "first call after a publish (ours: lists warmed; ref: not)",
                        f"{ours.p50_ms:.1f} / {ours.p99_ms:.1f} ms",
                        f"{ref.p50_ms:.1f} / {ref.p99_ms:.1f} ms",
                        f"{ours.p50_ms / ref.p50_ms:.2f}x",
                        f"{ours.calls} users; {ours.calls_per_s:.0f} vs "
                        f"{ref.calls_per_s:.0f} calls/s"))
    refreshed = _after_event(data_dir, REFRESHED, users)
    not_refreshed = _after_event(data_dir, NOT_REFRESHED, users)
    for n in IN_FLIGHT:
        ours, ref = refreshed[n], not_refreshed[n]
        rows.append(Row("Recommend p50 / p99", f"default blend, {n} in flight, each user's "
                        f"call {LIKE_TO_CALL_S * 1000:.0f} ms after their own new like "
                        "(ours: list refreshed after the event; ref: not)",
                        f"{ours.p50_ms:.1f} / {ours.p99_ms:.1f} ms",
                        f"{ref.p50_ms:.1f} / {ref.p99_ms:.1f} ms",
                        f"{ours.p50_ms / ref.p50_ms:.2f}x", f"{ours.calls} users"))
    mesh = Mesh(RUN_DIR / "bench", Endpoints.free(), data_dir=data_dir,
                env={"CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0"})
    mesh.start()
    try:
        train_s = asyncio.run(_train(mesh.endpoints.address("gateway")))
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
    print_table("Recommend at Last.fm scale through the edge (ours: model and catalogue "
                "copy in memory; reference: store and retrieval reads per call)", rows,
                "ours", "reference")
    return rows + recommend_events.run()


if __name__ == "__main__":
    run()
