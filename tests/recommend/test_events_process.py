"""The recommend service as a real process: a SIGKILL in the middle of a batch loses no
acknowledged event and lets the batch be re-sent safely; and the `cadenza event` CLI."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import grpc
import pytest

from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.recommend.event_log import CHUNK_EVENTS
from tools.devmesh import Endpoints, Mesh, free_port, wait_serving

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRACKS = ("proc-1", "proc-2", "proc-3")
pytestmark = pytest.mark.skipif(not (ROOT / "models/text/model_card.json").exists(),
                                reason="run `make text-model` first (make test does)")


class Pair:
    """Retrieval and recommend as separate processes, the way `make up` starts them."""

    def __init__(self, run_dir: pathlib.Path) -> None:
        self.mesh = Mesh(run_dir, Endpoints.free(), env={
            "CADENZA_RETRIEVAL_METRICS_PORT": "-1",
            "CADENZA_RECOMMEND_METRICS_PORT": "-1",
            "CADENZA_RECOMMEND_RETRAIN_INTERVAL_S": "0",  # no training in the background
            "CADENZA_RECOMMEND_LOG_FORMAT": "text",
        })
        self.mesh.extra_env["CADENZA_RECOMMEND_RETRIEVAL_ADDRESS"] = self.address("retrieval")
        self.events_db = self.mesh.data_dir / "recommend" / "events.sqlite3"

    def address(self, name: str) -> str:
        return self.mesh.endpoints.address(name)

    def start(self, name: str) -> None:
        proc = self.mesh.start_process(name)

        def check_alive() -> None:
            if proc.poll() is not None:
                log = (self.mesh.run_dir / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")

        wait_serving(self.address(name), 120, check_alive)

    def restart_recommend(self) -> None:
        self.mesh.endpoints.grpc_ports["recommend"] = free_port()
        self.start("recommend")

    def stub(self) -> recommend_pb2_grpc.RecommendServiceStub:
        return recommend_pb2_grpc.RecommendServiceStub(
            grpc.insecure_channel(self.address("recommend")))

    def stored_ids(self, prefix: str) -> list[str]:
        """Read straight from the file (read-only, beside the live writer)."""
        db = sqlite3.connect(f"{self.events_db.as_uri()}?mode=ro", uri=True)
        try:
            return [row[0] for row in db.execute(
                "SELECT event_id FROM events WHERE event_id LIKE ? ORDER BY rowid",
                (prefix + "%",))]
        finally:
            db.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    running = Pair(tmp_path_factory.mktemp("pair"))
    try:
        running.start("retrieval")
        with grpc.insecure_channel(running.address("retrieval")) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            for track_id in TRACKS:
                stub.IngestTrack(iter([rpb.IngestTrackRequest(header=rpb.IngestHeader(
                    metadata=rpb.TrackMetadata(track_id=track_id, title=track_id)))]),
                    timeout=30)
        running.start("recommend")
    except BaseException:
        running.mesh.stop()
        raise
    yield running
    running.mesh.stop()


def play(event_id: str, i: int = 0) -> pb.Event:
    return pb.Event(event_id=event_id, user_id=f"user-{i % 7}", track_id=TRACKS[i % 3],
                    kind=pb.EVENT_KIND_PLAY, listened_ms=1000 * i)


def requests(events: Iterable[pb.Event]) -> Iterator[pb.RecordEventsRequest]:
    for event in events:
        yield pb.RecordEventsRequest(event=event)


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_sigkill_mid_batch_loses_no_acknowledged_event_and_the_batch_resends_once(
        pair: Pair) -> None:
    stub = pair.stub()
    singles = [play(f"crash-single-{i}", i) for i in range(10)]
    for event in singles:
        assert stub.RecordEvent(pb.RecordEventRequest(event=event), timeout=10).duplicate is False
    first = [play(f"crash-first-{i}", i) for i in range(2_000)]
    assert stub.RecordEvents(requests(first), timeout=60).stored == len(first)
    acknowledged = {e.event_id for e in [*singles, *first]}

    # A long batch streamed flat out; the server is killed once part of it is committed.
    interrupted = [play(f"crash-long-{i:06d}", i) for i in range(30_000)]
    failure: list[grpc.StatusCode] = []

    def send() -> None:
        try:
            stub.RecordEvents(requests(interrupted), timeout=120)
        except grpc.RpcError as error:
            failure.append(error.code())

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(pair.stored_ids("crash-long-")) >= 3 * CHUNK_EVENTS, 60)
    pair.mesh.procs["recommend"].kill()  # SIGKILL: no drain, no close
    pair.mesh.procs["recommend"].wait(10)
    sender.join(60)
    assert failure, "the batch finished before the kill; make it longer"

    pair.restart_recommend()
    stub = pair.stub()
    survived = pair.stored_ids("crash-long-")
    # Chunks commit whole and in stream order: what survived is a chunk-sized prefix.
    assert len(survived) % CHUNK_EVENTS == 0 and len(survived) < len(interrupted)
    assert survived == [e.event_id for e in interrupted[:len(survived)]]

    # Every acknowledged event is there: sent again, each one is a duplicate.
    assert acknowledged <= set(pair.stored_ids("crash-"))
    again = stub.RecordEvents(requests(first), timeout=60)
    assert (again.stored, again.duplicates) == (0, len(first))
    for event in singles:
        assert stub.RecordEvent(pb.RecordEventRequest(event=event), timeout=10).duplicate

    # The interrupted batch sent again lands exactly once.
    resent = stub.RecordEvents(requests(interrupted), timeout=120)
    assert (resent.stored, resent.duplicates, len(resent.rejected)) == (
        len(interrupted) - len(survived), len(survived), 0)
    stored = pair.stored_ids("crash-")
    assert len(stored) == len(set(stored)) == len(acknowledged) + len(interrupted)


def cli(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza.cli.main", "event", *args,
                           "--target", pair.address("recommend"), "--insecure"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_event_command_records_and_reports_duplicates(pair: Pair) -> None:
    first = cli(pair, "cli-user", "proc-1", "like", "--event-id", "cli-1")
    assert (first.returncode, first.stdout.strip()) == (0, "stored"), first.stderr
    again = cli(pair, "cli-user", "proc-1", "like", "--event-id", "cli-1", "--json")
    assert json.loads(again.stdout) == {"event_id": "cli-1", "duplicate": True}
    played = cli(pair, "cli-user", "proc-2", "play", "--count", "3", "--listened-ms", "90000",
                 "--completion", "0.9", "--at", "2026-01-02T03:04:05+00:00")
    assert played.returncode == 0, played.stderr
    assert len(pair.stored_ids("cli-1")) == 1


def test_event_command_reports_what_to_fix(pair: Pair) -> None:
    missing = cli(pair, "cli-user", "no-such-track", "play")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr and "'no-such-track'" in missing.stderr
    future = cli(pair, "cli-user", "proc-1", "play", "--at", "2999-01-01T00:00:00+00:00")
    assert future.returncode == 1 and "event.occurred_at" in future.stderr
    unknown = cli(pair, "cli-user", "proc-1", "hum")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
