"""The catalog through the gateway with the `cadenza` CLI, and a crash in the middle of
an ingest, on the mesh as `make up` runs it."""

from __future__ import annotations

import json
import pathlib
import signal
import threading
import time

import grpc
import pytest

from cadenza.cli.catalog import track_id_for
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from tests.retrieval.test_service import wav
from tests.support.cli import cli
from tools.devmesh import Mesh


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("library")
    (root / "sub").mkdir()
    for name, freq, bpm in (("calm", 220, 70), ("calm2", 225, 72), ("busy", 880, 160)):
        (root / f"{name}.wav").write_bytes(wav(7, freq=freq, bpm=bpm))
    (root / "sub" / "flac-one.flac").write_bytes(wav(6, freq=330, fmt="FLAC"))
    (root / "sub" / "broken.mp3").write_bytes(b"ID3 not really an mp3" * 20)
    (root / "notes.txt").write_text("not audio, not picked up")
    return root


def test_ingest_walks_folders_reports_failures_and_skips_unchanged(
        mesh: Mesh, library: pathlib.Path) -> None:
    first = cli(mesh, "ingest", str(library), "--json")
    summary = json.loads(first.stdout)
    assert first.returncode == 1  # one file failed
    assert summary["files"] == 5 and summary["ingested"] == 4
    [failure] = summary["failed"]
    assert failure["path"].endswith("broken.mp3") and failure["code"] == "INVALID_ARGUMENT"

    second = json.loads(cli(mesh, "ingest", str(library), "--json").stdout)
    assert second["ingested"] == 0 and second["skipped_unchanged"] == 4

    (library / "calm.wav").write_bytes(wav(7, freq=240, bpm=70))
    third = json.loads(cli(mesh, "ingest", str(library), "--json").stdout)
    assert third["ingested"] == 1 and third["skipped_unchanged"] == 3


def test_search_and_track_commands(mesh: Mesh, library: pathlib.Path) -> None:
    calm = track_id_for(library / "calm.wav")
    result = cli(mesh, "search", "--like-track", calm, "--weight", "rhythm=3", "--json")
    assert result.returncode == 0, result.stderr
    ranked = [h["track"]["metadata"]["track_id"] for h in json.loads(result.stdout)["hits"]]
    assert ranked.index(track_id_for(library / "calm2.wav")) < ranked.index(
        track_id_for(library / "busy.wav"))
    table = cli(mesh, "search", "--text", "calm", "--tempo-min", "50", "--tempo-max", "100")
    assert table.returncode == 0 and "calm" in table.stdout
    bad = cli(mesh, "search", "--like-track", calm, "--weight", "tempo=1")
    assert bad.returncode == 1 and "weights[tempo]: unknown name" in bad.stderr
    shown = cli(mesh, "track", calm)
    assert shown.returncode == 0 and "tempo_bpm" in shown.stdout


def test_a_crash_mid_ingest_leaves_no_half_written_track(mesh: Mesh) -> None:
    channel = grpc.insecure_channel(mesh.endpoints.address("retrieval"))
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    audio = wav(20)
    sent_half = threading.Event()

    def slow_upload():  # type: ignore[no-untyped-def]
        yield pb.IngestTrackRequest(header=pb.IngestHeader(metadata=pb.TrackMetadata(
            track_id="crash-me", title="Half")))
        half = len(audio) // 2
        yield pb.IngestTrackRequest(audio_chunk=audio[:half])
        sent_half.set()
        time.sleep(30)  # the server dies before the rest arrives
        yield pb.IngestTrackRequest(audio_chunk=audio[half:])

    errors: list[grpc.RpcError] = []

    def upload() -> None:
        try:
            stub.IngestTrack(slow_upload(), timeout=60)
        except grpc.RpcError as error:
            errors.append(error)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    assert sent_half.wait(10)
    time.sleep(0.5)
    mesh.procs["retrieval"].send_signal(signal.SIGKILL)
    mesh.procs["retrieval"].wait(10)
    thread.join(40)
    assert errors and errors[0].code() == grpc.StatusCode.UNAVAILABLE
    channel.close()

    mesh.start_process("retrieval")
    mesh.wait_ready(120)
    with grpc.insecure_channel(mesh.endpoints.public) as gateway:
        via = retrieval_pb2_grpc.RetrievalServiceStub(gateway)
        with pytest.raises(grpc.RpcError) as caught:
            via.GetTrack(pb.GetTrackRequest(track_id="crash-me"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        # What was ingested before the crash is intact.
        stats = via.GetCatalogStats(pb.GetCatalogStatsRequest(), timeout=10)
        assert stats.track_count >= 4
