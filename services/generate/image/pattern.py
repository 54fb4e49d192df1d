"""The pattern layer: geometric shapes whose number grows with the music's density.

A pattern is drawn as two fields: a lightness offset (each shape lifts or sinks the
light under it by a fixed tone, so the gradient shows through, and overlapping shapes
add up, like inks on a print) and an accent coverage (the few shapes in the accent hue).
One of four styles is picked by the seed: scattered discs and rings, concentric orbits,
bands turned inside a disc, and Truchet arcs. Each spreads its shapes over the square.

Whatever the style, the density factor fixes the total length of the outlines that fall
on the cover, EDGE_SIDES[0] to EDGE_SIDES[1] times its side (geometrically), and each
style turns that length into its own count of elements (more, smaller discs; closer
rings or bands; a finer grid of arcs), never closer than MIN_PERIOD_PX. Outline length
is what the eye reads as busy, and what tools/image_eval measures, so densities compare
across styles.
Shapes are signed-distance fields anti-aliased over about one pixel: vectorised, no
per-pixel loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.generate.image.canvas import Floats, grid, unit_px

EDGE_SIDES = (2.5, 45.0)
EDGE_SOFTNESS_PX = 1.2
# The closest parallel outlines (640 px pixels): finer bands would blur into grey.
MIN_PERIOD_PX = 24.0
ACCENT_SHARE = 0.12
MAX_DISCS = 600
MAX_RIPPLE = 0.3
# Scattered discs cross and touch: about this share of their outline reads as separate
# (outlines within a few pixels of one another merge to the eye), so more are drawn.
DISC_OUTLINE_SHARE = 0.85
STYLES = ("discs", "orbits", "bands", "arcs")
_ANGLES = np.linspace(0.0, 2.0 * math.pi, 256, endpoint=False)


@dataclass(frozen=True)
class PatternLayer:
    """A pattern as fields [size, size]: lightness offset and accent coverage (0..1)."""

    style: str
    elements: int
    offset: Floats
    accent: Floats


def pattern_layer(size: int, density: float, tone: float,
                  rng: np.random.Generator) -> PatternLayer:
    """The pattern for this density (0..1); `tone` is a shape's lightness offset."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    # Geometric in density: equal steps of density are equal ratios of busyness.
    edge_px = size * EDGE_SIDES[0] * (EDGE_SIDES[1] / EDGE_SIDES[0]) ** density
    draw: Callable[[int, float, float, np.random.Generator], PatternLayer] = {
        "discs": _discs, "orbits": _orbits, "bands": _bands, "arcs": _arcs}[style]
    return draw(size, edge_px, tone, rng)


def coverage(sdf_px: Floats, size: int) -> Floats:
    """Anti-aliased inside-ness (1 inside, 0 outside) of a signed distance in pixels."""
    soft = EDGE_SOFTNESS_PX * unit_px(size)
    out: Floats = np.clip(0.5 - sdf_px / soft, 0.0, 1.0).astype(np.float32)
    return out


def visible_arc_px(cx: float, cy: float, radii: npt.NDArray[np.float64], size: int
                   ) -> npt.NDArray[np.float64]:
    """Length of each circle (centre cx, cy; pixels) that lies on the square."""
    xs = cx + radii[:, None] * np.cos(_ANGLES)[None, :]
    ys = cy + radii[:, None] * np.sin(_ANGLES)[None, :]
    inside = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    out: npt.NDArray[np.float64] = 2.0 * math.pi * radii * inside.mean(axis=1)
    return out


def _discs(size: int, edge_px: float, tone: float, rng: np.random.Generator) -> PatternLayer:
    """Discs and rings spread over the cover; denser music, more and smaller ones.

    Centres are jittered cells of a grid, visited in a shuffled order, so the shapes
    spread evenly (no empty quarter, no clump) at any count.
    """
    offset = np.zeros((size, size), np.float32)
    accent = np.zeros((size, size), np.float32)
    # Smaller shapes as the outline budget grows keep the covered area roughly even.
    scale_px = size * 0.5 / math.sqrt(edge_px / size)
    # About 0.675 scale mean radius, 40 % rings with two outlines each.
    expected = edge_px / (2.0 * math.pi * 0.675 * scale_px * 1.4)
    cells = max(1, math.ceil(math.sqrt(expected)))
    order = rng.permutation(cells * cells)
    drawn_px, count = 0.0, 0
    while drawn_px < edge_px and count < MAX_DISCS:
        cell = int(order[count % order.size])
        radius = scale_px * rng.uniform(0.35, 1.0)
        cx, cy = (np.array([cell % cells, cell // cells]) + rng.uniform(0.0, 1.0, 2)
                  ) / cells * size
        is_ring = rng.random() < 0.4
        width = max(radius * rng.uniform(0.15, 0.3), 10.0 * unit_px(size))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        is_accent = rng.random() < ACCENT_SHARE
        count += 1
        radii = np.array([radius, radius - width] if is_ring else [radius])
        drawn_px += DISC_OUTLINE_SHARE * float(visible_arc_px(cx, cy, radii, size).sum())
        y0, y1 = _span(cy, radius + 2, size)
        x0, x1 = _span(cx, radius + 2, size)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - radius
        sdf = np.abs(dist + width / 2) - width / 2 if is_ring else dist
        mask = coverage(sdf.astype(np.float32), size)
        offset[y0:y1, x0:x1] += mask * (sign * tone)
        _over(accent[y0:y1, x0:x1], mask, 1.0 if is_accent else 0.0)
    return PatternLayer("discs", count, offset, accent)


def _orbits(size: int, edge_px: float, tone: float, rng: np.random.Generator) -> PatternLayer:
    """Concentric ripples round one to three centres, reaching over the whole square.

    Evenly spaced rings draw the same outline length on every patch of the cover, so
    the spacing follows from the budget; more centres (when the budget allows rings
    closer than MAX_RIPPLE of the side) interfere in a moire.
    """
    x, y = grid(size)
    wanted = int(rng.integers(1, 4))
    points = rng.uniform(0.0, 1.0, (3, 2)) * size
    widths = rng.uniform(0.3, 0.45, 3)
    # Each centre's ripples, two outlines a ring, lay 2 / spacing of outline per pixel.
    centres = wanted
    while centres > 1 and 2.0 * centres * size * size / edge_px > MAX_RIPPLE * size:
        centres -= 1
    spacing_px = max(2.0 * centres * size * size / edge_px, MIN_PERIOD_PX * unit_px(size))
    offset = np.zeros((size, size), np.float32)
    accent = np.zeros((size, size), np.float32)
    rings = 0
    for i in range(centres):
        cx, cy = points[i]
        dist = np.hypot(x * size - cx, y * size - cy)
        index = np.rint(dist / spacing_px)
        sdf = np.abs(dist - index * spacing_px) - widths[i] * spacing_px / 2
        sdf = np.where(index >= 1, sdf, np.float32(1e3))
        mask = coverage(sdf.astype(np.float32), size)
        count = int(float(dist.max()) / spacing_px)
        offset += mask * ((1.0 if i % 2 == 0 else -1.0) * tone)
        _over(accent, mask * (index == int(rng.integers(1, max(2, count // 2)))), 1.0)
        rings += count
    return PatternLayer("orbits", rings, offset, accent)


def _bands(size: int, edge_px: float, tone: float, rng: np.random.Generator) -> PatternLayer:
    """Parallel bands across the cover, turned a right angle inside a large disc."""
    x, y = grid(size)
    px, py = x * size, y * size
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    radius_px = size * rng.uniform(0.22, 0.36)
    angle = rng.uniform(0.0, math.pi)
    rim_px = float(visible_arc_px(cx, cy, np.array([radius_px]), size)[0])
    # Bands of period p, half of it solid, draw 2 S^2 / p of outline over the square;
    # the disc's rim (about half of it between unlike tones) and its accent ring add some.
    left_px = max(edge_px - 1.5 * rim_px, size * 1.0)
    period_px = max(2.0 * size * size / left_px, MIN_PERIOD_PX * unit_px(size))
    disc = np.hypot(px - cx, py - cy) - radius_px
    inside = coverage(disc.astype(np.float32), size)
    mask = np.zeros((size, size), np.float32)
    for turn, share in ((0.0, 1.0 - inside), (0.5 * math.pi, inside)):
        across = (px * math.cos(angle + turn) + py * math.sin(angle + turn)
                  + rng.uniform(0.0, period_px))
        phase = across / period_px - np.floor(across / period_px)
        band = period_px * (np.abs(phase - 0.5) - 0.25)  # < 0 inside a band
        mask += coverage(band.astype(np.float32), size) * share
    sign = 1.0 if rng.random() < 0.5 else -1.0
    offset = (mask * sign * tone).astype(np.float32)
    # The accent: a thin ring just outside the disc.
    ring = coverage((np.abs(disc - 10.0 * unit_px(size)) - 2.5 * unit_px(size)
                     ).astype(np.float32), size)
    offset += ring * (sign * tone)
    return PatternLayer("bands", int(size / period_px), offset, ring)


def _arcs(size: int, edge_px: float, tone: float, rng: np.random.Generator) -> PatternLayer:
    """Truchet tiles: quarter-circle arcs at two opposite corners of each grid cell."""
    # A cell of side c holds two arcs of radius c/2, each stroke with two outlines:
    # pi c in all, so n^2 cells of side S/n draw pi n S.
    cells = max(2, round(edge_px / (math.pi * size)))
    cell_px = size / cells
    x, y = grid(size)
    u, v = x * cells, y * cells
    col, row = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - col, v - row
    flips = rng.random((cells, cells)) < 0.5
    accents = rng.random((cells, cells)) < ACCENT_SHARE
    fu = np.where(flips[row, col], 1.0 - fu, fu)
    near = np.hypot(fu, fv) * cell_px
    far = np.hypot(1.0 - fu, 1.0 - fv) * cell_px
    half = cell_px / 2
    sdf = np.minimum(np.abs(near - half), np.abs(far - half)) - 0.11 * cell_px
    mask = coverage(sdf.astype(np.float32), size)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    offset = (mask * sign * tone).astype(np.float32)
    accent = (mask * accents[row, col]).astype(np.float32)
    return PatternLayer("arcs", cells * cells, offset, accent)


def _span(centre: float, reach: float, size: int) -> tuple[int, int]:
    return max(0, int(centre - reach)), max(0, min(size, int(centre + reach) + 1))


def _over(target: Floats, mask: Floats, value: float) -> None:
    """Paints `value` over `target` in place with coverage `mask` (alpha over)."""
    target *= 1.0 - mask
    target += mask * value
