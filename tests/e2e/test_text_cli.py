"""`cadenza text`, `cadenza describe` and `cadenza lyrics` through the gateway."""

from __future__ import annotations

import json
import pathlib

import mido

from tests.generate.midi_files import melody_midi
from tests.support.cli import cli
from tools.devmesh import Mesh


def test_text_streams_and_reports_usage(mesh: Mesh) -> None:
    done = cli(mesh, "text", "Name a colour.", "--max-tokens", "8", "--temperature", "0",
               "--seed", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "smollm2-135m-instruct, seed 2" in done.stderr
    as_json = cli(mesh, "text", "Name a colour.", "--max-tokens", "8", "--temperature", "0",
                  "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["text"].strip() == done.stdout.strip()
    assert result["usage"]["completion_tokens"] <= 8


def test_text_reports_bad_input(mesh: Mesh) -> None:
    done = cli(mesh, "text", "hi", "--max-tokens", "5000")
    assert done.returncode == 1
    assert "INVALID_ARGUMENT: max_tokens" in done.stderr


def test_describe_a_midi_file(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tune.mid"
    path.write_bytes(melody_midi()[0])
    done = cli(mesh, "describe", str(path), "--titles", "2", "--seed", "1", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert len(reply["titles"]) == 2 and reply["description"]
    assert reply["facts"]["tempo_word"]
    unknown = cli(mesh, "describe", "no-such-track")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


def test_lyrics_for_a_melody_write_a_karaoke_file(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    melody = tmp_path / "tune.mid"
    melody.write_bytes(melody_midi()[0])
    song = tmp_path / "song.mid"
    done = cli(mesh, "lyrics", "--melody", str(melody), "--theme", "a walk in the rain",
               "--seed", "4", "-o", str(song), "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    syllables = sum(len(line["syllables"]) for line in reply["lines"])
    lyrics = [m for track in mido.MidiFile(str(song)).tracks for m in track
              if m.type == "lyrics"]
    assert syllables == len(lyrics) == len(melody_midi()[1])


def _wav(seconds: float = 8.0) -> bytes:
    import io

    import numpy as np
    import soundfile

    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    # A-minor-ish tones with a click every 0.75 s (80 bpm).
    signal = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 261.6, 329.6))
    signal = signal + 0.5 * ((t % 0.75) < 0.02)
    buffer = io.BytesIO()
    soundfile.write(buffer, (signal / np.abs(signal).max() * 0.8).astype(np.float32), rate,
                    format="WAV")
    return buffer.getvalue()


def test_describe_a_catalog_track_states_only_its_measured_facts(mesh: Mesh) -> None:
    import re

    import grpc

    from cadenza.retrieval.v1 import retrieval_pb2 as rpb
    from cadenza.retrieval.v1 import retrieval_pb2_grpc

    with grpc.insecure_channel(mesh.endpoints.public) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stub.IngestTrack(iter([
            rpb.IngestTrackRequest(header=rpb.IngestHeader(metadata=rpb.TrackMetadata(
                track_id="describe-me", title="Evening Study", artist="Test Ensemble",
                attributes={"instrument": "piano"}))),
            rpb.IngestTrackRequest(audio_chunk=_wav())]), timeout=60)
        features = stub.GetTrack(rpb.GetTrackRequest(track_id="describe-me"),
                                 timeout=10).track.features
        try:
            done = cli(mesh, "describe", "describe-me", "--titles", "3", "--seed", "3",
                       "--json")
        finally:
            stub.DeleteTrack(rpb.DeleteTrackRequest(track_id="describe-me"), timeout=10)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    facts, text = reply["facts"], reply["description"]
    assert (facts["key"], facts["mode"]) == (features.key, features.mode)
    assert abs(facts["tempo_bpm"] - features.tempo_bpm) < 1e-6 and facts["instruments"] == [
        "piano"]
    # The test's own reading: any key the text states is the track's, and no tempo word
    # contradicts its tempo band.
    for tonic, accidental, mode in re.findall(r"\b([A-G])(#| sharp)? (major|minor)\b", text):
        assert (tonic + ("#" if accidental else ""), mode) == (features.key, features.mode), text
    words = set(re.findall(r"[a-z]+", text.lower()))
    band = facts["tempo_word"]
    if band in ("very slow", "slow"):
        assert not words & {"fast", "quick", "brisk", "lively", "rapid", "uptempo"}, text
    if band in ("fast", "very fast"):
        assert not words & {"slow", "slowly", "leisurely"}, text
    assert len(reply["titles"]) == 3
