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
