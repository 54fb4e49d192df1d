"""`cadenza cover` and `cadenza image` through the gateway, against the whole mesh: a cover
for a catalog track (its features read through retrieval) and images for a prompt."""

from __future__ import annotations

import json
import pathlib

from PIL import Image

from cadenza.cli.catalog import track_id_for
from tests.generate.midi_files import melody_midi
from tests.retrieval.test_service import wav
from tests.support.cli import cli
from tools.devmesh import Mesh


def test_cover_for_a_catalog_track_and_for_a_piece(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    song = tmp_path / "night-drive.wav"
    song.write_bytes(wav(6, freq=440, bpm=128))
    assert cli(mesh, "ingest", str(song)).returncode == 0
    out = tmp_path / "cover.png"
    done = cli(mesh, "cover", track_id_for(song), "-o", str(out), "--prompt", "a red car",
               "--weight", "motif=0.5", "--weight", "texture=0.2", "--seed", "4",
               "--steps", "4", "--title", "Night Drive", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["seed"] == "4" and reply["motif_prompt"] == "a red car"
    assert abs(reply["weights"]["motif"] - 0.5) < 1e-9
    assert 0 < reply["factors"]["density"] <= 1 and "hue_deg" in reply["factors"]
    with Image.open(out) as image:
        assert image.size == (640, 640)

    piece = tmp_path / "piece.mid"
    piece.write_bytes(melody_midi()[0])
    big = tmp_path / "big.webp"
    done = cli(mesh, "cover", str(piece), "-o", str(big), "--size", "3000", "--weight",
               "motif=0")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    with Image.open(big) as image:
        assert (image.format, image.size) == ("WEBP", (3000, 3000))


def test_image_writes_numbered_files(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "moon.png"
    done = cli(mesh, "image", "a moon over the sea", "-o", str(out), "-n", "2", "--steps",
               "4", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "cadenza-motif" in done.stdout and "seed 1" in done.stdout
    for name in ("moon-1.png", "moon-2.png"):
        with Image.open(tmp_path / name) as image:
            assert image.mode == "RGBA" and image.size == (256, 256)


def test_image_commands_report_bad_input(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    unknown = cli(mesh, "cover", "no-such-track", "-o", str(tmp_path / "x.png"))
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    assert "no-such-track" in unknown.stderr
    size = cli(mesh, "cover", "no-such-track", "--size", "1000", "-o", str(tmp_path / "x.png"))
    assert size.returncode == 2 and "640 or 3000" in size.stderr
    steps = cli(mesh, "image", "a cat", "--steps", "0", "-o", str(tmp_path / "y.png"))
    assert steps.returncode == 1 and "sampling.steps: must be in [1, 250]" in steps.stderr
    weights = cli(mesh, "cover", "no-such-track", "--weight", "sparkle=1", "-o",
                  str(tmp_path / "x.png"))
    assert weights.returncode == 1 and "weights[sparkle]: unknown name" in weights.stderr
