"""Title and artist on the cover, in DejaVu Sans (the title in Bold).

The fonts are DejaVu Sans and DejaVu Sans Bold, committed under fonts/ (copied from the
matplotlib wheel, with their licence file LICENSE_DEJAVU) so that every image and machine
draws the same glyphs. DejaVu's licence is the Bitstream Vera licence (with the public
domain changes of the DejaVu project): free to use, modify and redistribute, and fonts
may be embedded in documents and images; so a rendered cover carries no obligation.

Fitting: the title is wrapped at spaces onto at most MAX_TITLE_LINES lines (a word too
wide for a line on its own is broken between characters); if it still does not fit the
cover's margins, the font is shrunk step by step and wrapped again. Nothing is ever cut:
when even the smallest size needs more lines, more lines are used, and a text that cannot
fit at all raises ValueError. The layout says what was done, so callers can report it.
Text is light on a dark region and dark on a light one, over a soft band and shadow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

MARGIN = 0.07  # of the side, each edge
TITLE_PX = 0.085  # starting title size, of the side
ARTIST_PX = 0.042
MIN_TITLE_PX = 0.028
SHRINK = 0.93
MAX_TITLE_LINES = 3
MAX_ARTIST_LINES = 2
MAX_BLOCK_HEIGHT = 0.4  # the text block's share of the side, at most
LINE_SPACING = 1.14
SMALLEST_PX = 6
BAND_STRENGTH = 0.32
# The band fades in over this many paddings above the text block.
BAND_FADE = 4
SHADOW_STRENGTH = 0.5

Font = ImageFont.FreeTypeFont
Rgb = tuple[int, int, int]


@dataclass(frozen=True)
class TextLayout:
    """Where and how the title and artist were set, in the final cover's pixels."""

    title_lines: tuple[str, ...]
    title_font_px: int
    title_line_widths_px: tuple[int, ...]
    artist_lines: tuple[str, ...]
    artist_font_px: int
    artist_line_widths_px: tuple[int, ...]
    available_width_px: int
    box: tuple[int, int, int, int]  # left, top, right, bottom of the text block
    wrapped: bool  # the title or artist took more than one line
    shrunk: bool  # a font was made smaller than its starting size to fit
    light_text: bool  # light text on a dark region (else dark on light)


def font_dir() -> Path:
    """The folder of the committed DejaVu fonts (copied from matplotlib's wheel)."""
    return Path(__file__).resolve().parent / "fonts"


@functools.lru_cache(maxsize=64)
def font(bold: bool, size_px: int) -> Font:
    """DejaVu Sans (Bold) at this pixel size."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(font_dir() / name), size_px)


def text_width_px(text: str, face: Font) -> int:
    """Ink width of a line: the larger of its advance and its glyphs' right edge."""
    if not text:
        return 0
    left, _, right, _ = face.getbbox(text)
    return int(np.ceil(max(face.getlength(text), right - min(left, 0))))


def wrap(text: str, face: Font, width_px: int) -> list[str]:
    """Greedy wrap at spaces; a word wider than the line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width_px(candidate, face) <= width_px:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while text_width_px(word, face) > width_px:
            cut = _longest_prefix(word, face, width_px)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def layout(title: str, artist: str, size_px: int, scale: float = 1.0) -> TextLayout:
    """Fits title and artist inside the margins of a square of side size_px.

    `scale` multiplies the starting font sizes (the typography weight's share).
    """
    available = int(size_px * (1.0 - 2.0 * MARGIN))
    max_height = int(size_px * MAX_BLOCK_HEIGHT)
    start_title = max(SMALLEST_PX, round(size_px * TITLE_PX * scale))
    start_artist = max(SMALLEST_PX, round(size_px * ARTIST_PX * scale))
    floor_title = max(SMALLEST_PX, round(size_px * MIN_TITLE_PX * scale))
    title_px, artist_px = start_title, start_artist
    while True:
        # Below the floor size the line limit is lifted: more lines rather than a cut.
        max_lines = MAX_TITLE_LINES if title_px >= floor_title else 10**6
        title_lines = wrap(title, font(True, title_px), available)
        artist_lines = wrap(artist, font(False, artist_px), available)
        height = _block_height(len(title_lines), title_px, len(artist_lines), artist_px)
        if (len(title_lines) <= max_lines and len(artist_lines) <= MAX_ARTIST_LINES
                and height <= max_height):
            break
        before = (title_px, artist_px)
        if len(title_lines) > max_lines or height > max_height:
            title_px = max(SMALLEST_PX, int(title_px * SHRINK))
        if len(artist_lines) > MAX_ARTIST_LINES or height > max_height:
            artist_px = max(SMALLEST_PX, int(artist_px * SHRINK))
        # The artist never outgrows the title.
        artist_px = min(artist_px, title_px)
        if (title_px, artist_px) == before:  # nothing left to shrink
            raise ValueError("title and artist cannot fit on the cover; shorten them")
    margin = round(size_px * MARGIN)
    bottom = size_px - margin
    return TextLayout(
        title_lines=tuple(title_lines), title_font_px=title_px,
        title_line_widths_px=tuple(text_width_px(s, font(True, title_px)) for s in title_lines),
        artist_lines=tuple(artist_lines), artist_font_px=artist_px,
        artist_line_widths_px=tuple(text_width_px(s, font(False, artist_px))
                                    for s in artist_lines),
        available_width_px=available,
        box=(margin, bottom - height, margin + available, bottom),
        wrapped=len(title_lines) > 1 or len(artist_lines) > 1,
        shrunk=title_px < start_title or artist_px < start_artist,
        light_text=True,
    )


def draw_text(image: Image.Image, text: TextLayout, opacity: float,
              tint: Rgb) -> TextLayout:
    """Draws the layout onto an RGB image in place; returns it with the colour chosen.

    The colour follows the mean luminance of the region behind the block: light text when
    it is dark. A band (a feathered wash towards the opposite tone) and a soft shadow keep
    the letters readable over patterns.
    """
    left, top = text.box[:2]
    pad = round(image.width * MARGIN * 0.6)
    region = (0, max(0, top - BAND_FADE * pad), image.width, image.height)
    behind = np.asarray(image.crop(region), dtype=np.float32) / 255.0
    luminance = float((behind @ np.array([0.2126, 0.7152, 0.0722], np.float32)).mean())
    light = luminance < 0.55
    ink = _mix(tint, (248, 248, 248) if light else (22, 22, 22), 0.88)
    shade: Rgb = (0, 0, 0) if light else (255, 255, 255)

    mask = Image.new("L", (region[2] - region[0], region[3] - region[1]), 0)
    pen = ImageDraw.Draw(mask)
    y = top - region[1]
    face = font(True, text.title_font_px)
    for line in text.title_lines:
        pen.text((left - region[0], y), line, font=face, fill=255)
        y += round(text.title_font_px * LINE_SPACING)
    y += round(text.artist_font_px * 0.5)
    face = font(False, text.artist_font_px)
    for line in text.artist_lines:
        pen.text((left - region[0], y), line, font=face, fill=255)
        y += round(text.artist_font_px * LINE_SPACING)

    pixels = np.asarray(image.crop(region), dtype=np.float32)
    # The band: a wash towards the shade colour that fades in from above the block and
    # runs the full width to the cover's edge, so it has no visible border.
    rows = np.arange(region[1], region[3], dtype=np.float32)[:, None, None]
    fade = np.clip((rows - (top - BAND_FADE * pad)) / (BAND_FADE * pad), 0.0, 1.0)
    band = fade * fade * (3.0 - 2.0 * fade) * BAND_STRENGTH * opacity
    pixels = (pixels * (1.0 - band) + np.asarray(shade, np.float32) * band).astype(np.float32)
    layers = [(mask, 1.0)]
    if light:
        # A soft dark shadow under light letters; dark letters on a light wash need none
        # (a pale halo round them reads as a glow, not as depth).
        shadow = mask.filter(ImageFilter.GaussianBlur(max(1.0, text.title_font_px / 14)))
        shift = max(1, text.title_font_px // 28)
        shadow = shadow.transform(shadow.size, Image.Transform.AFFINE,
                                  (1, 0, -shift, 0, 1, -shift))
        layers.insert(0, (shadow, SHADOW_STRENGTH))
    for layer, strength in layers:
        colour = np.asarray(ink if layer is mask else shade, np.float32)
        alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0 * strength * opacity
        pixels = (pixels * (1.0 - alpha) + colour * alpha).astype(np.float32)
    image.paste(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)), region)
    return TextLayout(**{**text.__dict__, "light_text": light})


def _block_height(title_lines: int, title_px: int, artist_lines: int, artist_px: int) -> int:
    height = round(title_lines * title_px * LINE_SPACING)
    if artist_lines:
        height += round(artist_px * 0.5) + round(artist_lines * artist_px * LINE_SPACING)
    return height


def _longest_prefix(word: str, face: Font, width_px: int) -> int:
    """The most leading characters of `word` that fit (at least one, so wrapping ends)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if text_width_px(word[:middle], face) <= width_px:
            low = middle
        else:
            high = middle - 1
    return low


def _mix(a: Rgb, b: Rgb, share_b: float) -> Rgb:
    return (round(a[0] + (b[0] - a[0]) * share_b), round(a[1] + (b[1] - a[1]) * share_b),
            round(a[2] + (b[2] - a[2]) * share_b))

