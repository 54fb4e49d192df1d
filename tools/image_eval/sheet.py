"""A contact sheet of 16 covers for 16 contrasting tracks, to look at (`-m tools.image_eval.sheet`).

`python -m tools.image_eval.sheet [OUT.png]` (default /tmp/covers_sheet.png). The motifs
are small RGBA pictures drawn here with Pillow (a sun, a star, a moon, a heart), standing
in for the diffusion model's 32 x 32 emoji.
"""

from __future__ import annotations

import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from services.generate.image.cover import DEFAULT_WEIGHTS, compose
from services.generate.image.factors import MusicFeatures, pitch_class

TILE_PX = 640
COLUMNS = 4


def motif(kind: str) -> npt.NDArray[np.uint8]:
    """A 32 x 32 RGBA picture (straight alpha): "sun", "star", "moon" or "heart"."""
    image = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    if kind == "sun":
        pen.ellipse((28, 28, 100, 100), fill=(255, 196, 40, 255), outline=(230, 120, 20, 255),
                    width=6)
    elif kind == "star":
        points = [(64 + (58 if i % 2 == 0 else 24) * math.sin(i * math.pi / 5),
                   68 - (58 if i % 2 == 0 else 24) * math.cos(i * math.pi / 5))
                  for i in range(10)]
        pen.polygon(points, fill=(255, 222, 80, 255), outline=(200, 140, 20, 255), width=5)
    elif kind == "moon":
        pen.ellipse((18, 18, 110, 110), fill=(236, 236, 250, 255))
        pen.ellipse((44, 8, 128, 92), fill=(0, 0, 0, 0))
    else:
        pen.ellipse((14, 24, 66, 76), fill=(226, 52, 80, 255))
        pen.ellipse((62, 24, 114, 76), fill=(226, 52, 80, 255))
        pen.polygon([(18, 60), (110, 60), (64, 114)], fill=(226, 52, 80, 255))
    small = image.resize((32, 32), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


def chroma(tonic_pc: int, second_pc: int) -> tuple[float, ...]:
    """A chroma with a clear tonic and second strongest class."""
    values = [0.2] * 12
    values[tonic_pc % 12] = 1.0
    values[second_pc % 12] = 0.7
    return tuple(values)


@dataclass(frozen=True)
class Track:
    """One made-up track of the sheet: its text, its features in brief, its motif."""

    title: str
    artist: str
    key: str
    second_pc: int  # the chroma's second strongest pitch class
    mode: str
    centroid_hz: float
    mfcc_scale: float  # |MFCC 1..19|: larger is rougher
    tempo_bpm: float
    onset_rate_hz: float
    rms_db: float
    dynamic_range_db: float
    motif: str = ""

    def features(self) -> MusicFeatures:
        """The MusicFeatures this row stands for."""
        tonic = pitch_class(self.key)
        assert tonic is not None
        mfcc = (-220.0, *(self.mfcc_scale * (1 if i % 2 else -1) for i in range(1, 20)))
        return MusicFeatures(
            key=self.key, mode=self.mode, chroma=chroma(tonic, self.second_pc),
            spectral_centroid_hz=self.centroid_hz, mfcc_mean=mfcc, tempo_bpm=self.tempo_bpm,
            onset_rate_hz=self.onset_rate_hz, rms_db_mean=self.rms_db,
            dynamic_range_db=self.dynamic_range_db)


# Keys, modes, brightness, rhythm and loudness spread wide; long titles to wrap.
TRACKS = (
    Track("Morning Light", "The Early Hours", "C", 7, "major", 2600, 14, 96, 2.0, -14, 18),
    Track("Nocturne in Blue", "Ana Lindqvist", "Ab", 3, "minor", 700, 8, 62, 0.8, -30, 34,
          "moon"),
    Track("Ignition", "Voltage Kids", "E", 11, "major", 3900, 26, 174, 7.5, -8, 6),
    Track("Slow Tide", "Harbour", "F#", 1, "minor", 1200, 12, 70, 1.2, -24, 28),
    Track("Golden Hour", "Sol y Sombra", "D", 9, "major", 2000, 18, 112, 3.2, -12, 14, "sun"),
    Track("Ashes", "Cold Meridian", "Bb", 5, "minor", 900, 20, 140, 5.0, -10, 8),
    Track("Paper Planes over the Old Harbour at Dawn", "Mira & the Lanterns", "G", 2,
          "major", 3100, 10, 128, 4.0, -16, 22),
    Track("Static", "Null Set", "C#", 8, "minor", 3600, 28, 160, 6.5, -9, 5),
    Track("Lullaby", "Pia", "F", 0, "major", 500, 6, 60, 0.6, -36, 38, "heart"),
    Track("Deep Field", "Orbital Sleep", "Eb", 10, "minor", 450, 9, 84, 1.0, -28, 30, "star"),
    Track("Green Room", "The Understudies", "A", 4, "major", 1800, 16, 104, 2.6, -18, 20),
    Track("Cathedral", "Vox Antiqua", "B", 6, "minor", 1500, 11, 66, 0.9, -22, 40),
    Track("Carnival", "Banda Rosa", "Bb", 3, "major", 2800, 22, 150, 6.0, -11, 12),
    Track("Undertow", "Grey Lakes", "D", 5, "minor", 1000, 14, 92, 2.2, -20, 24),
    Track("Sunburst", "Helio", "E", 9, "major", 3300, 18, 124, 4.8, -13, 16, "sun"),
    Track("Elegy for a Small Planet Drifting Far Away from Its Faithful Sun", "Kepler Choir",
          "C", 3, "minor", 600, 7, 58, 0.5, -34, 36),
)


def main(out: Path) -> None:
    """Renders the sheet and prints each cover's factors, layout and render time."""
    tiles = []
    for index, track in enumerate(TRACKS):
        start = time.perf_counter()
        cover = compose(track.features(), DEFAULT_WEIGHTS, seed=index, size=TILE_PX,
                        motif=motif(track.motif) if track.motif else None, title=track.title,
                        artist=track.artist, image_format="png")
        elapsed_s = time.perf_counter() - start
        layout = cover.title_layout
        print(f"{track.title[:28]:28s} {elapsed_s * 1000:5.0f} ms "
              + " ".join(f"{k}={v:.2f}" for k, v in cover.factor_values.items())
              + (f" lines={len(layout.title_lines)} font={layout.title_font_px}px"
                 if layout else ""))
        tiles.append(Image.open(io.BytesIO(cover.image)).convert("RGB"))
    gap = 16
    rows = math.ceil(len(tiles) / COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * (TILE_PX + gap) + gap, rows * (TILE_PX + gap) + gap),
                      (24, 24, 24))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (gap + (i % COLUMNS) * (TILE_PX + gap),
                           gap + (i // COLUMNS) * (TILE_PX + gap)))
    sheet.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/covers_sheet.png"))
