"""Prints the JSB match-score histograms that MATCH_THRESHOLD was read from.

Kept apart from jsb_overlap so the matcher does not import the corpus, which imports it.
Run as `python -m training.music.jsb_overlap_report`.
"""

from __future__ import annotations

import json

import numpy as np

from training.music.corpus import load_source, sources
from training.music.jsb_overlap import (
    MATCH_THRESHOLD,
    SPLITS,
    JsbIndex,
    Match,
    downsample,
    jsb_data_path,
)


def _print_histogram(title: str, scores: list[float]) -> None:
    counts, edges = np.histogram(scores, bins=20, range=(0.0, 1.0))
    print(title)
    for count, low in zip(counts, edges[:-1], strict=True):
        print(f"  {low:4.2f}-{low + 0.05:4.2f} {count:4d} {'#' * min(int(count), 60)}")


def report() -> None:
    """Score histograms: music21 chorales vs JSB, and JSB's own 16th vs quarter files."""
    index = JsbIndex()
    chorales = next(s for s in sources() if s.style == "chorale")
    pieces, _ = load_source(chorales)
    best: list[float] = []
    second: list[float] = []
    held_out, train = 0, 0
    for piece in pieces:
        frames = [frozenset(f) for f in piece.match_frames]
        found = index.matches(frames) + [Match("none", -1, 0.0)] * 2
        best.append(found[0].score)
        second.append(found[1].score)
        held_out += index.is_held_out(frames)
        train += found[0].score >= MATCH_THRESHOLD and found[0].split == "train"
    _print_histogram(f"music21 chorales ({len(pieces)}): best JSB score", best)
    _print_histogram("music21 chorales: second-best JSB score (a different piece)", second)
    sixteenth = json.loads((jsb_data_path().parent / "jsb-chorales-16th.json").read_text())
    own = [index.matches(downsample(p))[0].score for split in SPLITS for p in sixteenth[split]]
    _print_histogram("JSB 16th-note file vs the quarter file (same pieces)", own)
    print(f"threshold {MATCH_THRESHOLD}: {held_out} music21 chorales match JSB valid/test "
          f"(left out); {train} best match a JSB train piece")


if __name__ == "__main__":
    report()
