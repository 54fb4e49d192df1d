"""Gateways as separate processes, the way replicas run: quotas shared through Redis are
exact across two of them, and a gateway SIGKILLed under metered load loses no
acknowledged call and counts none twice."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from cadenza.kit.server import App, Binding, RunningServer, serve_in_process
from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gateway.access import CALL_ID_HEADER
from gateway.store import Quota
from gateway.store.sql import open_store
from tests.gateway.public_path import RETRIEVAL, EchoRetrieval
from tests.support.tenants import add_key, add_tenant, bearer
from tools.devmesh import ROOT, free_port, wait_serving

REQUEST = retrieval_pb2.GetTrackRequest(track_id="t1")


class Gateway:
    """One `python -m gateway` process on a free port."""

    def __init__(self, log: pathlib.Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        full = dict(os.environ, CADENZA_GATEWAY_PORT=str(self.port),
                    CADENZA_GATEWAY_METRICS_PORT="-1", CADENZA_GATEWAY_REQUIRE_KEYS="1",
                    PYTHONUNBUFFERED="1", **env)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=full,
                                         stdout=out, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        def alive() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}")
        await asyncio.to_thread(wait_serving, self.address, 60, alive, None, RETRIEVAL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
async def backend() -> AsyncIterator[RunningServer]:
    retriever = EchoRetrieval()
    running = await serve_in_process(App(bindings=[Binding(
        RETRIEVAL, lambda s: retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(
            retriever, s))]))
    yield running
    await running.server.stop(None)


def gateway_env(backend: RunningServer, store: str, redis: str = "") -> dict[str, str]:
    env = {"CADENZA_GATEWAY_RETRIEVAL_ADDRESS": f"127.0.0.1:{backend.port}",
           "CADENZA_GATEWAY_RECOMMEND_ADDRESS": f"127.0.0.1:{free_port()}",
           "CADENZA_GATEWAY_GENERATE_ADDRESS": f"127.0.0.1:{free_port()}"}
    env["DATABASE_URL" if "://" in store else "CADENZA_GATEWAY_STORE_PATH"] = store
    if redis:
        env["REDIS_URL"] = redis
    return env


async def test_two_replicas_sharing_redis_admit_exactly_the_limit(
        backend: RunningServer, tmp_path: pathlib.Path, redis_url: str) -> None:
    db = str(tmp_path / "gateway.db")
    store = await open_store(db)
    limit = 40
    await add_tenant(store, "acme", [Quota("*", requests_per_minute=limit)])
    _, secret = await add_key(store, "acme")
    await store.close()
    replicas = [Gateway(tmp_path / f"gw{i}.log", gateway_env(backend, db, redis_url))
                for i in range(2)]
    try:
        await asyncio.gather(*(r.ready() for r in replicas))
        channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
        stubs = [retrieval_pb2_grpc.RetrievalServiceStub(c) for c in channels]

        async def call(i: int) -> grpc.StatusCode:
            try:
                await stubs[i % 2].GetTrack(REQUEST, timeout=10, metadata=bearer(secret))
                return grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                return error.code()

        # Calls all in one minute window: wait for a fresh one if this one ends soon.
        left = 60 - time.time() % 60
        if left < 15:
            await asyncio.sleep(left + 0.5)
        codes = await asyncio.gather(*(call(i) for i in range(3 * limit)))
        admitted = codes.count(grpc.StatusCode.OK)
        refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
        print(f"two replicas: {admitted} admitted of {len(codes)}, limit {limit}, "
              f"overshoot {admitted - limit}")
        assert admitted == limit and refused == 2 * limit
        for c in channels:
            await c.close()
    finally:
        for r in replicas:
            r.stop()


async def test_a_gateway_killed_under_load_loses_no_acknowledged_call(
        backend: RunningServer, tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "gateway.db")
    store = await open_store(db)
    await add_tenant(store, "acme")
    _, secret = await add_key(store, "acme")
    gateway = Gateway(tmp_path / "gw.log", gateway_env(backend, db))
    acked: list[str] = []
    failed = 0
    try:
        await gateway.ready()
        channel = grpc.aio.insecure_channel(gateway.address)
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stop, enough = asyncio.Event(), asyncio.Event()

        async def worker() -> None:
            nonlocal failed
            while not stop.is_set():
                call = stub.GetTrack(REQUEST, timeout=5, metadata=bearer(secret))
                try:
                    await call
                except grpc.aio.AioRpcError:
                    failed += 1
                    await asyncio.sleep(0.01)
                    continue
                acked.append(dict(await call.initial_metadata())[CALL_ID_HEADER])
                if len(acked) >= 300:
                    enough.set()

        workers = [asyncio.create_task(worker()) for _ in range(16)]
        await asyncio.wait_for(enough.wait(), 60)
        gateway.proc.send_signal(signal.SIGKILL)
        gateway.proc.wait(10)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
        await channel.close()
    finally:
        gateway.stop()
    records = await store.usage_records("acme", None, None)
    ids = [r.request_id for r in records]
    missing = set(acked) - set(ids)
    print(f"SIGKILL under load: {len(acked)} acknowledged, {len(ids)} records, "
          f"{sum(r.settled for r in records)} settled, {len(missing)} acknowledged missing, "
          f"{len(ids) - len(set(ids))} duplicated, {failed} failed calls")
    assert not missing
    assert len(ids) == len(set(ids))
    # Every record is a call that was let through: at most the ones in flight at the kill
    # were not acknowledged.
    assert len(acked) <= len(ids) <= len(acked) + 16
    await store.close()
