"""The cover's painted layers as numpy float arrays: palette, tone, grain, colour space.

Everything is built in HLS (hue in degrees, lightness and saturation in 0..1) and turned
into RGB once, so each factor owns one quantity: the palette owns hue and saturation, the
mode owns the mean lightness, contrast owns the spread of lightness around that mean,
and the grain (added to R, G and B alike, which changes neither hue nor saturation) owns
the finest detail. Lengths are in pixels of a 640 px cover times `unit`, so a cover
composed at 1,024 px looks like the 640 px one, only sharper.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

BASE_SIZE_PX = 640
# Spread of the background's lightness (standard deviation) before the contrast factor.
TONE_SPREAD = 0.075
# Hue swing of the background gradient, degrees either side of the key's hue.
HUE_SWING_DEG = 14.0
# Saturation at palette weight 1: pastel enough for type on top, vivid enough to tell keys.
BASE_SATURATION = 0.36
# Saturation is up to this share higher in the shadows (lower in the highlights).
SHADOW_RICHNESS = 0.3
# Accent shapes' saturation, times the base.
ACCENT_SATURATION = 1.6
# Standard deviation of the lightness (tone and pattern) at contrast 0 and 1.
LIGHTNESS_SPREAD = (0.04, 0.2)
# Grain: Gaussian-filtered white noise; dull sounds get soft, coarse grain (large sigma),
# bright ones crisp, fine grain. Both ends in 640 px pixels.
GRAIN_SIGMA_PX = (1.0, 0.3)
# Grain strength (standard deviation in lightness) at brightness 0 and 1: dull sounds
# are also smoother.
GRAIN_AMPLITUDE = (0.014, 0.032)
MOTTLE_SIGMA_PX = 24.0


def unit_px(size: int) -> float:
    """Pixels per 640 px pixel at this canvas size."""
    return size / BASE_SIZE_PX


def grid(size: int) -> tuple[Floats, Floats]:
    """x and y of the pixel centres in 0..1, each [size, size] (y down)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)


def tone_field(size: int, rng: np.random.Generator) -> Floats:
    """The background's light, falling from above: a ramp, a glow and a vignette.

    Mean 0, standard deviation 1. The ramp's tilt (within 35 degrees of vertical) and the
    glow's place (in the upper half) and size come from `rng`; keeping the light above
    gives every cover a similar spread of light across its upper half, and a calmer,
    darker ground under the text.
    """
    x, y = grid(size)
    angle = 0.5 * math.pi + rng.uniform(-0.6, 0.6)
    glow_x, glow_y = rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.4)
    glow_radius = rng.uniform(0.3, 0.45)
    ramp = -((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle))
    glow = np.exp(-((x - glow_x) ** 2 + (y - glow_y) ** 2) / (2.0 * glow_radius**2))
    vignette = -((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return standardised((0.3 * ramp + 0.6 * glow + 1.5 * vignette).astype(np.float32))


def hue_field(size: int, rng: np.random.Generator) -> Floats:
    """A diagonal ramp in -1..1 along which the background's hue swings."""
    x, y = grid(size)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)
    out: Floats = (ramp / (0.5 * math.sqrt(2.0))).astype(np.float32)
    return out


def lightness_spread(contrast: float) -> float:
    """The standard deviation of lightness the contrast factor (0..1) asks for.

    Geometric between the ends of LIGHTNESS_SPREAD: equal steps of the factor are equal
    ratios of contrast, as the eye judges them.
    """
    low, high = LIGHTNESS_SPREAD
    return float(low * (high / low) ** contrast)


def contrast_scale(contrast: float, painted_spread: float, gain: float) -> float:
    """The factor that multiplies the painted lightness deviations.

    At gain 1 it brings their standard deviation from `painted_spread` to
    lightness_spread(contrast); gain 0 gives 1 (the factor does nothing) and gain 2
    applies the same correction twice over (in log space).
    """
    if painted_spread <= 0:
        return 1.0
    return float((lightness_spread(contrast) / painted_spread) ** gain)


def grain_field(size: int, brightness: float, roughness: float,
                rng: np.random.Generator) -> Floats:
    """Film grain in lightness units, mean 0; multiply by the texture gain.

    Brightness sets the grain's spatial frequency, its Gaussian filter's sigma falling
    geometrically from GRAIN_SIGMA_PX[0] to [1], and its strength, rising linearly over
    GRAIN_AMPLITUDE: a dull sound is soft and smooth, a bright one crisp and sparkling.
    Roughness (timbre) gives its character: a rougher sound's grain is up to 30 % stronger
    and lies on a soft mottle, like printed paper.
    """
    unit = unit_px(size)
    coarse, fine = GRAIN_SIGMA_PX
    sigma_px = unit * coarse * (fine / coarse) ** brightness
    grain = standardised(gaussian_blur(rng.standard_normal((size, size), np.float32), sigma_px))
    mottle = standardised(gaussian_blur(rng.standard_normal((size, size), np.float32),
                                         unit * MOTTLE_SIGMA_PX))
    low, high = GRAIN_AMPLITUDE
    amplitude = (low + (high - low) * brightness) * (0.85 + 0.3 * roughness)
    out: Floats = (amplitude * (grain + 0.4 * roughness * mottle)).astype(np.float32)
    return out


def gaussian_blur(image: Floats, sigma_px: float) -> Floats:
    """Gaussian filter by FFT, wrapping at the edges (seamless for noise)."""
    rows, cols = image.shape
    fy = np.fft.fftfreq(rows).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(cols).astype(np.float32)[None, :]
    transfer = np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fx * fx + fy * fy))
    out: Floats = np.fft.irfft2(np.fft.rfft2(image) * transfer, s=image.shape).astype(np.float32)
    return out


def hls_to_rgb(hue_deg: Floats, lightness: Floats, saturation: Floats) -> Floats:
    """[..., 3] RGB in 0..1 from HLS fields of one shape (hue in degrees)."""
    light = np.clip(lightness, 0.0, 1.0)
    chroma_half = np.clip(saturation, 0.0, 1.0) * np.minimum(light, 1.0 - light)
    sector = hue_deg / np.float32(30.0)
    channels = []
    for offset in (0.0, 8.0, 4.0):  # R, G, B
        k = (offset + sector) % 12.0
        channels.append(light - chroma_half * np.clip(np.minimum(k - 3.0, 9.0 - k), -1.0, 1.0))
    out: Floats = np.stack(channels, axis=-1).astype(np.float32)
    return out


def to_uint8(rgb: Floats) -> npt.NDArray[np.uint8]:
    """0..1 floats to 0..255 bytes, rounded."""
    out: npt.NDArray[np.uint8] = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return out


def standardised(field: Floats) -> Floats:
    """The field less its mean, divided by its standard deviation (if not 0)."""
    centred = field - field.mean()
    spread = float(centred.std())
    out: Floats = (centred / spread if spread > 0 else centred).astype(np.float32)
    return out
