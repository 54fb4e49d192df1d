"""The cover-art composer: I(x) = sum_i w_i f_i(x) over factors the music drives.

Factors: palette (hue from the key, lightness from the mode, swung along a gradient),
texture (film grain: its fineness from brightness, its character from timbre), pattern
(geometric shapes, as many as the rhythm is dense), contrast (the spread of light, from
loudness and dynamic range), motif (the diffusion model's picture in the middle) and
typography (title and artist). A weight is its factor's strength relative to the house
look, DEFAULT_WEIGHTS: 0 removes the factor, the default gives the designed cover, twice
the default doubles its effect (each capped where more would only break the picture).

The painting is done at min(size, MAX_CANVAS_PX) and resized (Lanczos) to the size
asked; the text is set at the final size so it stays crisp. Every random choice comes
from numpy Generators seeded by (seed, layer), so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from services.generate.image import canvas, typography
from services.generate.image.factors import MusicFeatures, factor_values
from services.generate.image.pattern import pattern_layer

FACTORS = ("palette", "texture", "pattern", "contrast", "motif", "typography")
DEFAULT_WEIGHTS = {"palette": 1.0, "texture": 0.5, "pattern": 0.5, "contrast": 0.5,
                   "motif": 1.0, "typography": 1.0}
SIZES = (640, 3000)
FORMATS = ("png", "webp")
MAX_CANVAS_PX = 1024
MIN_SIZE_PX, MAX_SIZE_PX = 64, 4096
# A pattern shape lifts or sinks the lightness under it by this much (pattern gain 1).
PATTERN_TONE = 0.13
MAX_GAIN = 2.0
WEBP_QUALITY = 90
# libwebp's effort 2 of 6: half the time of the default 4 for files 2 % larger.
WEBP_METHOD = 2
# zlib level 1: a 3000 px cover with grain barely compresses better at 6, and takes 4x.
PNG_COMPRESS_LEVEL = 1

Rgba = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Cover:
    """A rendered cover and what went into it."""

    image: bytes
    image_format: str  # "png" | "webp"
    size: int  # pixels per side
    factor_values: dict[str, float]
    weights: dict[str, float]  # the weights used, defaults filled in
    title_layout: typography.TextLayout | None  # None when no text was set


def compose(features: MusicFeatures, weights: Mapping[str, float], seed: int, size: int,
            motif: Rgba | None, title: str, artist: str, image_format: str) -> Cover:
    """Renders a square cover of `size` pixels as PNG or WebP bytes.

    `weights` may name any subset of FACTORS (the others keep DEFAULT_WEIGHTS) and are
    taken as validated (finite, non-negative). Each factor's gain is weight / default,
    capped at MAX_GAIN: palette scales saturation (0: greyscale), texture the grain,
    pattern the shapes' tone (0: none, and no accent colour), contrast the correction
    towards the music's spread of light (0: the tone as painted, whatever the loudness),
    motif its size and opacity (0: not drawn), typography the font size (0: no text;
    opaque from gain 0.5). `motif` is an RGBA uint8 [h, w, 4] picture with straight
    alpha, or None.
    """
    if image_format not in FORMATS:
        raise ValueError(f"image_format must be one of {FORMATS}, got {image_format!r}")
    if not MIN_SIZE_PX <= size <= MAX_SIZE_PX:
        raise ValueError(f"size must be in [{MIN_SIZE_PX}, {MAX_SIZE_PX}], got {size}")
    used = {name: float(weights.get(name, DEFAULT_WEIGHTS[name])) for name in FACTORS}
    gains = {name: min(used[name] / DEFAULT_WEIGHTS[name], MAX_GAIN) for name in FACTORS}
    values = factor_values(features)
    side = min(size, MAX_CANVAS_PX)

    rgb = paint(values, gains, seed, side)
    if motif is not None and gains["motif"] > 0:
        rgb = place_motif(rgb, motif, gains["motif"])
    image = Image.fromarray(canvas.to_uint8(rgb), "RGB")
    if size != side:
        image = image.resize((size, size), Image.Resampling.LANCZOS)

    text_layout = None
    if (title.strip() or artist.strip()) and gains["typography"] > 0:
        scale = 0.8 + 0.2 * gains["typography"]
        text_layout = typography.layout(title.strip(), artist.strip(), size, scale)
        tint = _tint(values["hue_deg"], gains["palette"])
        # Half-transparent letters only look faded: the text is opaque from gain 0.5 up.
        text_layout = typography.draw_text(image, text_layout,
                                           min(2.0 * gains["typography"], 1.0), tint)
    return Cover(image=encode(image, image_format), image_format=image_format, size=size,
                 factor_values=values, weights=used, title_layout=text_layout)


def paint(values: Mapping[str, float], gains: Mapping[str, float], seed: int,
          side: int) -> canvas.Floats:
    """Palette, pattern, contrast and texture: the RGB floats [side, side, 3] in 0..1."""
    tone = canvas.tone_field(side, _rng(seed, 0))
    swing = canvas.hue_field(side, _rng(seed, 1))
    shapes = pattern_layer(side, values["density"], PATTERN_TONE * gains["pattern"],
                           _rng(seed, 2))
    # The accent colour belongs to the pattern's shapes: it fades out with them.
    accent = shapes.accent * min(gains["pattern"], 1.0)
    deviation = canvas.TONE_SPREAD * tone + shapes.offset
    # Deviations from the mode's mid tone are stretched about it, so contrast sets the
    # spread of light but not its mean: mode and contrast stay separable.
    stretch = canvas.contrast_scale(values["contrast"], float(deviation.std()),
                                    gains["contrast"])
    lightness = values["lightness"] + stretch * deviation
    base_hue = values["hue_deg"] + canvas.HUE_SWING_DEG * swing
    # Accent shapes take the accent hue along the shorter way round the circle.
    turn = (values["accent_hue_deg"] - base_hue + 180.0) % 360.0 - 180.0
    hue = (base_hue + accent * turn) % 360.0
    # Shadows a little richer than highlights, as in real light; accent shapes pop.
    depth = np.clip(-stretch * deviation / canvas.LIGHTNESS_SPREAD[1], -1.0, 1.0)
    saturation = (canvas.BASE_SATURATION * gains["palette"]
                  * (1.0 + canvas.SHADOW_RICHNESS * depth)
                  * (1.0 + (canvas.ACCENT_SATURATION - 1.0) * accent))
    rgb = canvas.hls_to_rgb(hue.astype(np.float32), lightness.astype(np.float32), saturation)
    if gains["texture"] > 0:
        grain = canvas.grain_field(side, values["brightness"], values["roughness"],
                                   _rng(seed, 3))
        rgb += (gains["texture"] * grain)[..., None]
    out: canvas.Floats = np.clip(rgb, 0.0, 1.0)
    return out


def place_motif(rgb: canvas.Floats, motif: Rgba, gain: float) -> canvas.Floats:
    """Alpha-composites the motif, upscaled (Lanczos), a little above the centre.

    Its box is 30 % of the side plus 12 % per unit of gain, its opacity min(gain, 1); a
    soft drop shadow (its alpha blurred, offset down and right) lifts it off the ground.
    Lanczos works on premultiplied colour in Pillow, so transparent pixels' colour cannot
    bleed into the edge.
    """
    if motif.ndim != 3 or motif.shape[2] != 4:
        raise ValueError(f"motif must be RGBA [h, w, 4], got shape {motif.shape}")
    side = rgb.shape[0]
    box = round(side * (0.30 + 0.12 * gain))
    height, width = motif.shape[:2]
    fit = box / max(height, width)
    picture = Image.fromarray(np.ascontiguousarray(motif, np.uint8), "RGBA").resize(
        (max(1, round(width * fit)), max(1, round(height * fit))), Image.Resampling.LANCZOS)
    pixels = np.asarray(picture, dtype=np.float32) / 255.0
    # A 32 px picture blown up tenfold has edges a dozen pixels soft: steepen the alpha
    # round its mid level so the silhouette is crisp (about 3 px), its colours smooth.
    steep = max(1.0, fit / 3.0)
    alpha = np.clip((pixels[..., 3:] - 0.5) * steep + 0.5, 0.0, 1.0) * min(gain, 1.0)

    blur = box * 0.035
    pad = int(4 * blur) + 2
    silhouette = canvas.to_uint8(alpha[..., 0] / max(min(gain, 1.0), 1e-6))
    shadow_image = Image.fromarray(silhouette).crop(
        (-pad, -pad, picture.width + pad, picture.height + pad))
    shadow = np.asarray(shadow_image.filter(ImageFilter.GaussianBlur(blur)),
                        dtype=np.float32)[..., None] / 255.0 * 0.45 * min(gain, 1.0)
    left = (side - picture.width) // 2
    top = round(side * 0.46) - picture.height // 2
    shift = round(box * 0.035)
    out = rgb.copy()
    _multiply(out, 1.0 - shadow, left - pad + shift, top - pad + shift)
    _blend(out, pixels[..., :3], alpha, left, top)
    return out


def encode(image: Image.Image, image_format: str) -> bytes:
    """PNG (zlib level 1, no optimisation, for speed) or WebP (quality 90, effort 2)."""
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return buffer.getvalue()


def _rng(seed: int, layer: int) -> np.random.Generator:
    # One stream per layer: changing one layer's draws never moves another's.
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, layer])


def _tint(hue_deg: float, palette_gain: float) -> typography.Rgb:
    """A pale or deep version of the key's hue for the text; grey without a palette."""
    hue = np.array([hue_deg], np.float32)
    rgb = canvas.hls_to_rgb(hue, np.array([0.5], np.float32),
                            np.array([min(0.6 * palette_gain, 1.0)], np.float32))[0]
    return (int(rgb[0] * 255), int(rgb[1] * 255), int(rgb[2] * 255))


def _window(out: canvas.Floats, layer: npt.NDArray[np.float32], left: int, top: int
            ) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Target and source slices where a layer placed at (left, top) overlaps `out`."""
    side_y, side_x = out.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + layer.shape[0], side_y), min(left + layer.shape[1], side_x)
    if y0 >= y1 or x0 >= x1:
        return None
    return ((slice(y0, y1), slice(x0, x1)),
            (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)))


def _multiply(out: canvas.Floats, factor: npt.NDArray[np.float32], left: int, top: int) -> None:
    window = _window(out, factor, left, top)
    if window is not None:
        target, source = window
        out[target] *= factor[source]


def _blend(out: canvas.Floats, colour: npt.NDArray[np.float32], alpha: npt.NDArray[np.float32],
           left: int, top: int) -> None:
    window = _window(out, alpha, left, top)
    if window is not None:
        target, source = window
        a = alpha[source]
        out[target] = out[target] * (1.0 - a) + colour[source] * a
