"""What a cover shows, measured from its pixels alone, and how well that follows the music.

Each measurement decodes the encoded image and looks only at the background: the pixels
outside the centre square (where the motif sits: the middle half of each side) and
outside the bottom band (the lowest BOTTOM_BAND of the height, where the text is set).
Nothing the composer computed is read. Lightness is HLS lightness, (max + min) / 2 of R,
G and B in 0..1: the composer paints in HLS, so this is the quantity its palette sets.

- hue: circular mean of hue weighted by chroma (max - min, saturation in absolute form,
  which ignores the meaningless hue of near-grey pixels), in degrees in [-15, 345): the
  circle is cut at 345 degrees, between the last key hue (F, 330) and the first (C, 0),
  so a C cover a few degrees below 0 reads -3, not 357.
- lightness: mean lightness.
- texture: median |Laplacian| of lightness (5-point stencil, per pixel squared): the
  finest detail, which is grain. The median, unlike the mean, ignores the few pixels on
  the pattern's outlines.
- pattern: outline length per pixel: edge pixels of the lightness smoothed by a Gaussian
  of EDGE_SIGMA_PX (which wipes out grain), thinned to one pixel (edge_density).
- contrast: standard deviation of lightness.

Lengths are for a 640 px cover and scale with the size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage, stats

from services.generate.image.factors import MusicFeatures, fifths_index, pitch_class

Floats = npt.NDArray[np.float64]

BOTTOM_BAND = 0.36
HUE_CUT_DEG = 345.0
EDGE_SIGMA_PX = 4.0
EDGE_THRESHOLD = 0.003
BASE_SIZE_PX = 640


@dataclass(frozen=True)
class Measurement:
    """The visual properties of one cover (see the module docstring)."""

    hue_deg: float
    lightness: float
    texture: float
    pattern: float
    contrast: float


def decode(image: bytes) -> Floats:
    """The encoded cover (PNG or WebP) as RGB floats [h, w, 3] in 0..1."""
    with Image.open(io.BytesIO(image)) as opened:
        out: Floats = np.asarray(opened.convert("RGB"), dtype=np.float64) / 255.0
    return out


def background_mask(height: int, width: int) -> npt.NDArray[np.bool_]:
    """True on the pixels measured: outside the centre square and the bottom band."""
    y = (np.arange(height) + 0.5)[:, None] / height
    x = (np.arange(width) + 0.5)[None, :] / width
    centre = (np.abs(x - 0.5) < 0.25) & (np.abs(y - 0.5) < 0.25)
    out: npt.NDArray[np.bool_] = ~centre & (y < 1.0 - BOTTOM_BAND)
    return out


def lightness(rgb: Floats) -> Floats:
    """HLS lightness, (max + min) / 2 over the channels."""
    out: Floats = 0.5 * (rgb.max(axis=-1) + rgb.min(axis=-1))
    return out


def dominant_hue_deg(rgb: Floats, mask: npt.NDArray[np.bool_]) -> float:
    """Chroma-weighted circular mean hue of the masked pixels, in [-15, 345) degrees."""
    r, g, b = rgb[..., 0][mask], rgb[..., 1][mask], rgb[..., 2][mask]
    high, low = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(high == r, ((g - b) / safe) % 6.0,
                   np.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) * 60.0
    angle = np.radians(hue)
    mean = math.degrees(math.atan2(float(np.sum(chroma * np.sin(angle))),
                                   float(np.sum(chroma * np.cos(angle)))))
    return (mean - HUE_CUT_DEG) % 360.0 + HUE_CUT_DEG - 360.0


def texture_energy(light: Floats, mask: npt.NDArray[np.bool_]) -> float:
    """Median |Laplacian| of lightness over the masked pixels (the image edge excluded)."""
    laplacian = np.zeros_like(light)
    laplacian[1:-1, 1:-1] = (light[:-2, 1:-1] + light[2:, 1:-1] + light[1:-1, :-2]
                             + light[1:-1, 2:] - 4.0 * light[1:-1, 1:-1])
    inner = mask.copy()
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return float(np.median(np.abs(laplacian[inner])))


def edge_density(light: Floats, mask: npt.NDArray[np.bool_]) -> float:
    """Outline pixels per masked pixel (at 640 px): thin edges of the smoothed lightness.

    The lightness is smoothed by a Gaussian of EDGE_SIGMA_PX, which wipes out grain; an
    outline pixel is one whose gradient is above EDGE_THRESHOLD (lightness per pixel) and
    is the largest of its two neighbours across the edge (non-maximum suppression, as in
    Canny's detector). That makes each outline one pixel thin whatever its contrast, so
    the count measures outline length, not how strongly the outlines are drawn; each edge
    pixel counts the length of line it stands for, so slanted outlines count as straight.
    """
    scale = light.shape[0] / BASE_SIZE_PX
    smooth = ndimage.gaussian_filter(light, EDGE_SIGMA_PX * scale, mode="nearest")
    gy, gx = np.gradient(smooth)
    magnitude = np.hypot(gx, gy) * scale
    # Gradient direction to the nearest of 0, 45, 90, 135 degrees (y points down).
    sector = np.rint(np.arctan2(gy, gx) % math.pi / (math.pi / 4)).astype(np.int64) % 4
    padded = np.pad(magnitude, 1)
    rows, cols = magnitude.shape
    is_peak = np.zeros_like(magnitude, dtype=bool)
    for direction, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
        behind = padded[1 - dy:1 - dy + rows, 1 - dx:1 - dx + cols]
        is_peak |= (sector == direction) & (magnitude >= ahead) & (magnitude > behind)
    edges = is_peak & (magnitude > EDGE_THRESHOLD)
    # Length per edge pixel: a thin line is 8-connected where its peaks are compared
    # along an axis and 4-connected where along a diagonal (1 / (|cos| + |sin|) each).
    ax, ay = np.abs(gx), np.abs(gy)
    norm = np.hypot(ax, ay)
    along_axis = sector % 2 == 0
    length = np.where(along_axis, norm / np.maximum(np.maximum(ax, ay), 1e-12),
                      norm / np.maximum(ax + ay, 1e-12))
    return float(np.sum(length[mask & edges]) / np.sum(mask) * scale)


def measure(image: bytes) -> Measurement:
    """Every visual property of one encoded cover."""
    rgb = decode(image)
    mask = background_mask(*rgb.shape[:2])
    light = lightness(rgb)
    return Measurement(
        hue_deg=dominant_hue_deg(rgb, mask),
        lightness=float(light[mask].mean()),
        texture=texture_energy(light, mask),
        pattern=edge_density(light, mask),
        contrast=float(light[mask].std()),
    )


def key_driver(features: MusicFeatures) -> float:
    """The key's circle-of-fifths index, C 0 ... F 11 (NaN when the key is unknown)."""
    pc = pitch_class(features.key)
    return math.nan if pc is None else float(fifths_index(pc))


def mode_driver(features: MusicFeatures) -> float:
    """1 for major, 0 for minor (NaN otherwise)."""
    return {"major": 1.0, "minor": 0.0}.get(features.mode, math.nan)


def rhythm_driver(features: MusicFeatures) -> float:
    """log(tempo_bpm * onset_rate_hz): beats and onsets per unit time together (NaN when
    either was not measured: 0, which the composer replaces by a neutral default)."""
    if not (features.tempo_bpm > 0 and features.onset_rate_hz > 0):
        return math.nan
    return math.log(features.tempo_bpm * features.onset_rate_hz)


def loudness_driver(features: MusicFeatures) -> float:
    """Loudness and dynamic range, each over its scale, summed (louder, wider: higher;
    NaN when either was not measured)."""
    if features.rms_db_mean == 0.0 or not features.dynamic_range_db > 0:
        return math.nan
    return (0.65 * (features.rms_db_mean + 45.0) / 40.0
            + 0.35 * (features.dynamic_range_db - 2.0) / 43.0)


def spearman_table(features_list: Sequence[MusicFeatures], covers: Sequence[object]
                   ) -> dict[str, float]:
    """Rank correlation of each audio driver with the property it should control.

    Pairs (driver -> what is measured on the pixels):
    - hue: key, as its circle-of-fifths index -> dominant background hue (Spearman).
    - lightness: mode, major 1 / minor 0 -> mean lightness. The point-biserial r
      (Pearson with a two-valued driver): Spearman's rho cannot pass sqrt(3)/2 = 0.87
      for a two-valued driver with an even split, even when every major cover is
      lighter than every minor one. `lightness_auc` gives that share of pairs.
    - texture: spectral centroid -> median |Laplacian| of lightness (Spearman).
    - pattern: log(tempo x onset rate) -> share of outline pixels (Spearman).
    - contrast: loudness and dynamic range (loudness_driver) -> std of lightness
      (Spearman).
    `covers` are composer Covers (anything with an `image` attribute of encoded bytes) or
    the encoded bytes themselves. Covers whose driver was not measured (an unknown key or
    mode, a tempo or onset rate of 0) are left out of that pair.
    """
    measured = [measure(_bytes(cover)) for cover in covers]
    key = np.array([key_driver(f) for f in features_list])
    mode = np.array([mode_driver(f) for f in features_list])
    light = np.array([m.lightness for m in measured])
    known_key, known_mode = ~np.isnan(key), ~np.isnan(mode)
    major, minor = light[known_mode & (mode == 1)], light[known_mode & (mode == 0)]
    return {
        "hue": _rho(key[known_key], np.array([m.hue_deg for m in measured])[known_key]),
        "lightness": float(stats.pointbiserialr(mode[known_mode], light[known_mode])[0]),
        "lightness_auc": float(np.mean(major[:, None] > minor[None, :])),
        "texture": _rho(np.array([f.spectral_centroid_hz for f in features_list]),
                        np.array([m.texture for m in measured])),
        "pattern": _rho(np.array([rhythm_driver(f) for f in features_list]),
                        np.array([m.pattern for m in measured])),
        "contrast": _rho(np.array([loudness_driver(f) for f in features_list]),
                         np.array([m.contrast for m in measured])),
    }


def _rho(driver: Floats, measured: Floats) -> float:
    known = ~np.isnan(driver)   # tracks whose driver was not measured are left out
    return float(stats.spearmanr(driver[known], measured[known])[0])


def _bytes(cover: object) -> bytes:
    data = cover if isinstance(cover, bytes) else getattr(cover, "image", None)
    if not isinstance(data, bytes):
        raise TypeError("expected a Cover or encoded image bytes")
    return data
