"""The cover-art composer: determinism, each weight's factor, text fitting, sizes, formats,
and factors that follow their audio drivers as measured on the pixels (tools/image_eval)."""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.generate.image.cover import DEFAULT_WEIGHTS, SIZES, Cover, compose
from services.generate.image.factors import MusicFeatures, factor_values
from services.generate.image.typography import font, layout, text_width_px
from tools.image_eval.covers import (
    background_mask,
    decode,
    edge_density,
    lightness,
    measure,
    spearman_table,
    texture_energy,
)
from tools.image_eval.eval_covers import random_features

BASE = MusicFeatures(
    key="A", mode="minor",
    chroma=(0.5, 0.2, 0.3, 0.2, 0.8, 0.3, 0.2, 0.4, 0.2, 1.0, 0.2, 0.3),
    spectral_centroid_hz=1800.0,
    mfcc_mean=(-220.0, 110.0, -40.0, 15.0, -20.0, -8.0, -14.0, -9.0, -16.0, -10.0,
               -9.0, -3.0, -6.0, -3.0, -4.0, -1.0, -3.0, 0.0, -1.5, -0.7),
    tempo_bpm=110.0, onset_rate_hz=3.0, rms_db_mean=-16.0, dynamic_range_db=14.0)
PLAIN = {**DEFAULT_WEIGHTS, "motif": 0.0, "typography": 0.0}
LONG_TITLE = ("The Extraordinarily Long and Winding Road Home Through the Valley of Echoes "
              "Where Nobody Has Walked Since Nineteen Sixty")


def _motif() -> np.ndarray:
    picture = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(picture).ellipse((4, 4, 27, 27), fill=(250, 200, 40, 255))
    return np.asarray(picture, dtype=np.uint8)


@functools.cache
def _render(features: MusicFeatures = BASE, weights: tuple[tuple[str, float], ...] = (),
            seed: int = 7, size: int = 640, with_motif: bool = False, title: str = "",
            artist: str = "", image_format: str = "png") -> Cover:
    return compose(features, {**PLAIN, **dict(weights)}, seed, size,
                   _motif() if with_motif else None, title, artist, image_format)


def _pixels(cover: Cover) -> np.ndarray:
    with Image.open(io.BytesIO(cover.image)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _with(**changes: object) -> MusicFeatures:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_the_same_inputs_and_seed_give_identical_bytes() -> None:
    kwargs = {"with_motif": True, "title": "Night Drive", "artist": "Lumen",
              "weights": (("motif", 1.0), ("typography", 1.0))}
    first = _render(**kwargs)
    again = compose(BASE, {**PLAIN, "motif": 1.0, "typography": 1.0}, 7, 640, _motif(),
                    "Night Drive", "Lumen", "png")
    assert first.image == again.image


def test_another_seed_gives_another_cover() -> None:
    assert _render(seed=7).image != _render(seed=8).image


def test_palette_weight_zero_gives_greyscale() -> None:
    cover = _render(weights=(("palette", 0.0), ("typography", 1.0)), title="Grey Skies",
                    artist="Mono")
    rgb = _pixels(cover)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 1
    assert np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 1
    coloured = _pixels(_render())
    assert np.abs(coloured[..., 0] - coloured[..., 2]).max() > 20


def _light(cover: Cover) -> tuple[np.ndarray, np.ndarray]:
    rgb = decode(cover.image)
    return lightness(rgb), background_mask(*rgb.shape[:2])


def test_texture_weight_zero_removes_the_grain() -> None:
    grainy = texture_energy(*_light(_render()))
    smooth = texture_energy(*_light(_render(weights=(("texture", 0.0),))))
    assert smooth < 0.2 * grainy


def test_pattern_weight_zero_removes_the_shapes() -> None:
    assert edge_density(*_light(_render())) > 0.01
    assert edge_density(*_light(_render(weights=(("pattern", 0.0),)))) < 0.002


def test_without_pattern_and_texture_the_background_is_a_smooth_gradient() -> None:
    rgb = _pixels(_render(weights=(("pattern", 0.0), ("texture", 0.0))))
    assert np.abs(np.diff(rgb, axis=0)).max() <= 2
    assert np.abs(np.diff(rgb, axis=1)).max() <= 2


def test_contrast_weight_zero_ignores_loudness() -> None:
    off = (("contrast", 0.0),)
    quiet = _render(_with(rms_db_mean=-38.0, dynamic_range_db=6.0), off)
    loud = _render(_with(rms_db_mean=-8.0, dynamic_range_db=38.0), off)
    assert quiet.image == loud.image
    assert _render(_with(rms_db_mean=-38.0)).image != _render(_with(rms_db_mean=-8.0)).image


def test_motif_weight_zero_draws_no_motif() -> None:
    assert _render(with_motif=True).image == _render().image  # PLAIN has motif 0


def test_the_motif_sits_in_the_centre() -> None:
    with_motif = _pixels(_render(weights=(("motif", 1.0),), with_motif=True))
    without = _pixels(_render())
    changed = np.abs(with_motif - without).max(axis=-1) > 8
    assert changed[280:330, 295:345].all()  # the disc's middle, a little above centre
    assert not changed[:80].any() and not changed[:, :80].any()


def test_typography_weight_zero_sets_no_text() -> None:
    cover = _render(title="Silent", artist="Nobody")
    assert cover.title_layout is None
    assert cover.image == _render().image


def test_a_title_sets_text_and_reports_its_layout() -> None:
    cover = _render(weights=(("typography", 1.0),), title="Short", artist="Band")
    assert cover.title_layout is not None
    assert cover.title_layout.title_lines == ("Short",)
    assert not cover.title_layout.wrapped and not cover.title_layout.shrunk
    assert cover.image != _render().image


@pytest.mark.parametrize("size", [640, 3000])
def test_a_long_title_is_wrapped_and_shrunk_until_every_line_fits(size: int) -> None:
    assert len(LONG_TITLE) == 120
    text = layout(LONG_TITLE, "The Long Names Ensemble", size)
    assert text.wrapped and text.shrunk
    assert 1 < len(text.title_lines) <= 3
    face = font(True, text.title_font_px)
    for line, width in zip(text.title_lines, text.title_line_widths_px, strict=True):
        assert width == text_width_px(line, face) <= text.available_width_px
    assert max(text.artist_line_widths_px) <= text.available_width_px
    left, top, right, bottom = text.box
    assert 0 <= left < right <= size and 0 <= top < bottom <= size
    # Nothing was cut: the lines hold every character, in order (broken at spaces).
    assert " ".join(text.title_lines) == LONG_TITLE


def test_a_word_too_long_for_a_line_is_broken_not_cut() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 2
    text = layout(word, "", 640)
    assert "".join(text.title_lines) == word
    assert max(text.title_line_widths_px) <= text.available_width_px


def test_text_that_cannot_fit_is_refused_not_cut() -> None:
    with pytest.raises(ValueError, match="cannot fit"):
        layout("Hi", "y" * 400, 640)


def test_the_composer_reports_a_long_titles_layout() -> None:
    cover = _render(weights=(("typography", 1.0),), title=LONG_TITLE, artist="X")
    assert cover.title_layout is not None and cover.title_layout.shrunk


@pytest.mark.parametrize("size", SIZES)
def test_each_size_gives_that_many_pixels(size: int) -> None:
    cover = _render(size=size)
    assert cover.size == size
    with Image.open(io.BytesIO(cover.image)) as image:
        assert image.format == "PNG" and image.size == (size, size)


def test_webp_decodes() -> None:
    cover = _render(image_format="webp")
    with Image.open(io.BytesIO(cover.image)) as image:
        assert image.format == "WEBP" and image.size == (640, 640)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="image_format"):
        compose(BASE, PLAIN, 0, 640, None, "", "", "gif")


def test_factor_values_are_in_range_and_missing_features_are_neutral() -> None:
    values = factor_values(BASE)
    assert values["hue_deg"] == 90.0  # A is 3 fifths above C
    assert values["accent_hue_deg"] == 120.0  # E, the chroma's second strongest class
    assert all(0.0 <= v <= 1.0 for k, v in values.items() if not k.endswith("_deg"))
    unknown = factor_values(MusicFeatures("", "", (), 0.0, (), 0.0, 0.0, 0.0, 0.0))
    assert unknown == pytest.approx({"hue_deg": 165.0, "accent_hue_deg": 195.0,
                                     "lightness": 0.5, "brightness": 0.5, "roughness": 0.5,
                                     "density": 0.5, "contrast": 0.5})


def test_factor_values_rise_with_their_drivers() -> None:
    def series(factor: str, field: str, values: list[float]) -> list[float]:
        return [factor_values(_with(**{field: v}))[factor] for v in values]

    def rising(xs: list[float]) -> bool:
        return all(a < b for a, b in itertools.pairwise(xs))

    assert rising(series("brightness", "spectral_centroid_hz", [400, 900, 2000, 4500]))
    assert rising(series("density", "tempo_bpm", [60, 90, 130, 180]))
    assert rising(series("density", "onset_rate_hz", [0.5, 1.5, 4.0, 8.0]))
    assert rising(series("contrast", "rms_db_mean", [-40, -28, -16, -8]))
    assert rising(series("contrast", "dynamic_range_db", [5, 15, 25, 40]))
    keys = ["C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F"]
    assert series("hue_deg", "key", keys) == [30.0 * i for i in range(12)]  # type: ignore[arg-type]
    assert factor_values(_with(mode="major"))["lightness"] > factor_values(BASE)["lightness"]


def _measured(prop: str, features: list[MusicFeatures], seed: int) -> list[float]:
    return [getattr(measure(_render(f, seed=seed).image), prop) for f in features]


def _non_decreasing(xs: list[float]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(xs))


@pytest.mark.parametrize("seed", [1, 2])
def test_faster_music_gets_a_denser_pattern(seed: int) -> None:
    tracks = [_with(tempo_bpm=t, onset_rate_hz=o) for t, o in ((64, 0.8), (110, 3.0),
                                                               (172, 7.5))]
    assert _non_decreasing(_measured("pattern", tracks, seed))


def test_brighter_music_gets_finer_sharper_grain() -> None:
    tracks = [_with(spectral_centroid_hz=c) for c in (400.0, 1200.0, 4000.0)]
    assert _non_decreasing(_measured("texture", tracks, 3))


def test_louder_music_gets_more_contrast() -> None:
    tracks = [_with(rms_db_mean=r, dynamic_range_db=d) for r, d in ((-38, 8), (-22, 20),
                                                                   (-9, 36))]
    assert _non_decreasing(_measured("contrast", tracks, 4))


def test_major_is_lighter_than_minor() -> None:
    minor, major = _measured("lightness", [BASE, _with(mode="major")], 5)
    assert major > minor + 0.15


def test_the_hue_follows_the_key_round_the_circle_of_fifths() -> None:
    keys = {"C": 0.0, "E": 120.0, "Ab": 240.0, "F": 330.0}  # fifths 0, 4, 8, 11
    hues = _measured("hue_deg", [_with(key=k) for k in keys], 6)
    assert _non_decreasing(hues)
    assert all(abs(h - want) < 15.0 for h, want in zip(hues, keys.values(), strict=True))


def test_spearman_table_pairs_each_driver_with_what_the_pixels_show() -> None:
    rng = np.random.default_rng(11)
    features = [random_features(rng) for _ in range(8)]
    covers = [_render(f, seed=i) for i, f in enumerate(features)]
    table = spearman_table(features, covers)
    assert set(table) == {"hue", "lightness", "lightness_auc", "texture", "pattern",
                          "contrast"}
    assert all(rho >= 0.8 for rho in table.values()), table
