"""Does each cover factor follow its audio driver? `python -m tools.image_eval.eval_covers`.

`python -m tools.image_eval.eval_covers [--count N] [--seed S]` renders N (100) covers
at 640 px for random feature sets drawn from realistic ranges (random_features), without
motif and text (weights 0), each with its own seed, measures them from their pixels
(tools/image_eval/covers.py) and prints the rank correlations of spearman_table, the goal
being at least 0.9 each, with the time per cover at 640 and 3,000 px.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats

from services.generate.image.cover import DEFAULT_WEIGHTS, compose
from services.generate.image.factors import MusicFeatures
from tools.image_eval.covers import measure, mode_driver, spearman_table

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl-Kessler key profiles: how strongly each scale degree sounds in tonal music.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
EVAL_WEIGHTS = {**DEFAULT_WEIGHTS, "motif": 0.0, "typography": 0.0}


def random_features(rng: np.random.Generator) -> MusicFeatures:
    """A feature set from realistic ranges, each feature drawn independently.

    Key uniform over 12 tonics, mode major or minor evenly; chroma the key's
    Krumhansl-Kessler profile with 30 % noise; centroid log-uniform 400-4,000 Hz; MFCC
    means normal around typical values (coefficient 0 near -230, others spread 12);
    tempo uniform 60-180 bpm, onset rate 0.5-8 Hz, loudness -40..-8 dBFS, dynamic range
    5-40 dB.
    """
    tonic = int(rng.integers(12))
    mode = "major" if rng.random() < 0.5 else "minor"
    profile = np.roll(np.asarray(MAJOR_PROFILE if mode == "major" else MINOR_PROFILE), tonic)
    chroma = profile * (1.0 + 0.3 * rng.standard_normal(12)).clip(0.1)
    mfcc = np.concatenate([[-230.0 + 60.0 * rng.standard_normal()],
                           12.0 * rng.standard_normal(19)])
    return MusicFeatures(
        key=KEYS[tonic], mode=mode, chroma=tuple(float(c) for c in chroma / chroma.max()),
        spectral_centroid_hz=float(np.exp(rng.uniform(np.log(400.0), np.log(4000.0)))),
        mfcc_mean=tuple(float(m) for m in mfcc),
        tempo_bpm=float(rng.uniform(60.0, 180.0)), onset_rate_hz=float(rng.uniform(0.5, 8.0)),
        rms_db_mean=float(rng.uniform(-40.0, -8.0)),
        dynamic_range_db=float(rng.uniform(5.0, 40.0)))


def time_per_cover_s(size: int, image_format: str, repeats: int = 3) -> float:
    """Best wall time of `repeats` full renders (with text) at this size."""
    features = random_features(np.random.default_rng(0))
    best = float("inf")
    for seed in range(repeats):
        start = time.perf_counter()
        compose(features, DEFAULT_WEIGHTS, seed, size, None, "A Title", "An Artist",
                image_format)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Prints the correlation table and the timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    features = [random_features(rng) for _ in range(args.count)]
    start = time.perf_counter()
    covers = [compose(f, EVAL_WEIGHTS, i, 640, None, "", "", "png")
              for i, f in enumerate(features)]
    render_s = time.perf_counter() - start
    table = spearman_table(features, covers)
    measured = [measure(c.image) for c in covers]
    # The drivers one by one, and mode's plain Spearman (capped near 0.87, see
    # spearman_table), for the record.
    singles = {
        "lightness_spearman": (mode_driver, "lightness"),
        "pattern_tempo_only": (lambda f: f.tempo_bpm, "pattern"),
        "pattern_onset_only": (lambda f: f.onset_rate_hz, "pattern"),
        "contrast_loudness_only": (lambda f: f.rms_db_mean, "contrast"),
        "contrast_dynamic_range_only": (lambda f: f.dynamic_range_db, "contrast"),
    }
    extra = {name: float(stats.spearmanr([driver(f) for f in features],
                                         [getattr(m, prop) for m in measured])[0])
             for name, (driver, prop) in singles.items()}
    print(json.dumps({
        "covers": args.count,
        "correlations": {k: round(v, 3) for k, v in table.items()},
        "single_drivers": {k: round(v, 3) for k, v in extra.items()},
        "mean_render_s_640_no_text": round(render_s / args.count, 3),
        "time_per_cover_s": {f"{size}_{fmt}": round(time_per_cover_s(size, fmt), 3)
                             for size in (640, 3000) for fmt in ("png", "webp")},
    }, indent=2))


if __name__ == "__main__":
    main()
