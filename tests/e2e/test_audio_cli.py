"""`cadenza synth` and `cadenza transfer` through the gateway, against the whole mesh."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import soundfile

from tests.generate.midi_files import melody_midi
from tests.support.cli import cli
from tools.devmesh import Mesh


def test_synth_renders_a_midi_file_with_an_instrument_and_a_mix(
        mesh: Mesh, tmp_path: pathlib.Path) -> None:
    piece = tmp_path / "piece.mid"
    piece.write_bytes(melody_midi()[0])
    out = tmp_path / "out.wav"
    done = cli(mesh, "synth", str(piece), "--instrument", "violin", "--seed", "1",
               "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "cadenza-ddsp" in done.stdout and "violin=1" in done.stdout
    samples, rate = soundfile.read(str(out))
    assert rate == 16000 and np.abs(samples).max() > 0.1

    morph = tmp_path / "morph.flac"
    done = cli(mesh, "synth", str(piece), "--mix", "violin=0.7,flute=0.3", "--json",
               "-o", str(morph))
    assert done.returncode == 0, done.stderr
    weights = json.loads(done.stdout)["voices"][0]["weights"]
    assert abs(weights["violin"] - 0.7) < 1e-9 and abs(weights["flute"] - 0.3) < 1e-9
    assert soundfile.info(str(morph)).format == "FLAC"


def test_transfer_resynthesises_a_hum_as_a_flute(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    t = np.arange(2 * 16000) / 16000
    hum = tmp_path / "hum.wav"
    soundfile.write(str(hum), 0.3 * np.sin(2 * np.pi * 220.0 * t), 16000)
    out = tmp_path / "flute.wav"
    done = cli(mesh, "transfer", str(hum), "--instrument", "flute", "--shift", "12",
               "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["shift_semitones"] == 12 and abs(reply["median_f0_hz"] - 220.0) < 5
    assert soundfile.info(str(out)).duration > 1.5


def test_audio_commands_report_bad_input(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    piece = tmp_path / "piece.mid"
    piece.write_bytes(melody_midi()[0])
    unknown = cli(mesh, "synth", str(piece), "--instrument", "kazoo", "-o",
                  str(tmp_path / "x.wav"))
    assert unknown.returncode == 1 and "INVALID_ARGUMENT" in unknown.stderr
    assert "kazoo" in unknown.stderr
    malformed = cli(mesh, "synth", str(piece), "--mix", "violin=lots", "-o",
                    str(tmp_path / "x.wav"))
    assert malformed.returncode == 2 and "weight must be a number" in malformed.stderr
    silent = tmp_path / "silence.wav"
    soundfile.write(str(silent), np.zeros(16000), 16000)
    nothing = cli(mesh, "transfer", str(silent), "--instrument", "flute", "-o",
                  str(tmp_path / "y.wav"))
    assert nothing.returncode == 1 and "no pitch" in nothing.stderr
