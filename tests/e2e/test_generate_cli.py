"""`cadenza generate` and `cadenza models` (the platform's catalogue) through the gateway,
against the whole mesh."""

from __future__ import annotations

import io
import pathlib

import pretty_midi
import soundfile

from tests.generate.midi_files import melody_midi
from tests.support.cli import cli
from tools.devmesh import Mesh


def test_models_lists_the_served_model_as_ready(mesh: Mesh) -> None:
    shown = cli(mesh, "models")
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if "cadenza-poly" in line)
    assert "ready" in line.lower() and "music" in line and "seconds" in line
    # Every service's models are in the one list.
    assert "cadenza-recommender" in shown.stdout and "all-minilm-l6-v2" in shown.stdout


def test_generate_writes_midi_and_audio(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    midi_path = tmp_path / "out.mid"
    done = cli(mesh, "generate", "--bars", "2", "--seed", "3", "--time-signature", "3/4",
               "-o", str(midi_path))
    assert done.returncode == 0, done.stderr
    assert "seed 3" in done.stdout and "cadenza-poly" in done.stdout
    midi = pretty_midi.PrettyMIDI(str(midi_path))
    assert midi.time_signature_changes[0].numerator == 3
    assert any(inst.notes for inst in midi.instruments)

    wav_path = tmp_path / "out.wav"
    done = cli(mesh, "generate", "--bars", "2", "--seed", "3", "-o", str(wav_path))
    assert done.returncode == 0, done.stderr
    samples, rate = soundfile.read(io.BytesIO(wav_path.read_bytes()))
    assert rate > 0 and abs(samples).max() > 0.01


def test_generate_harmonizes_a_melody_file(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    melody, notes = melody_midi()
    primer = tmp_path / "melody.mid"
    primer.write_bytes(melody)
    out = tmp_path / "harmonized.mid"
    done = cli(mesh, "generate", "--mode", "harmonize", "--primer", str(primer), "--seed", "1",
               "-o", str(out))
    assert done.returncode == 0, done.stderr
    written = pretty_midi.PrettyMIDI(str(out))
    pitches = {n.pitch for inst in written.instruments for n in inst.notes}
    assert {n.pitch for n in notes} <= pitches and len(pitches) > len({n.pitch for n in notes})


def test_generate_reports_bad_input_and_fails(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    done = cli(mesh, "generate", "--temperature", "0", "-o", str(tmp_path / "x.mid"))
    assert done.returncode != 0
    assert "INVALID_ARGUMENT" in done.stderr and "temperature" in done.stderr
    assert not (tmp_path / "x.mid").exists()
