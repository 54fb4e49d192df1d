"""A track whose upsert returned survives a SIGKILL of the process, in each embedded engine."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

import pytest

from services.retrieval.edge_store import EdgeStore
from services.retrieval.model import TrackFilter
from services.retrieval.qdrant_store import QdrantStore
from services.retrieval.store import VectorStore

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACKNOWLEDGED = 200


@pytest.mark.parametrize("engine", ["edge", "embedded-disk"])
def test_acknowledged_upserts_survive_sigkill(engine: str, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "store")
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.retrieval.upsert_until_killed", engine, path],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged: list[str] = []
    try:
        assert writer.stdout.readline().strip() == "open"
        while len(acknowledged) < ACKNOWLEDGED:
            acknowledged.append(writer.stdout.readline().strip())
        # Killed mid-stream, most likely inside an upsert.
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    store: VectorStore = EdgeStore.open(path) if engine == "edge" else QdrantStore.open(path)
    try:
        found = {s.track.metadata.track_id for s in store.get(acknowledged)}
        assert found == set(acknowledged)
        # The writer may be ahead of what was read (lines wait in the pipe); never behind.
        assert store.count(TrackFilter()) >= len(acknowledged)
    finally:
        store.close()
