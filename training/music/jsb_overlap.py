"""Which corpus pieces are JSB benchmark chorales, matched by content in any key.

The benchmark's quarter-note file is transposed (mostly to C major / C minor) and its
16th-note file lists pieces in another order, so neither names nor keys pair pieces.
Content does, in two stages:

1. Candidates: each quarter becomes (bass motion mod 12, pitch classes over the bass);
   both survive transposition and octave slips of the bass. The CANDIDATES JSB pieces
   sharing most 3-quarter n-grams of these go on to stage 2.
2. Score: the candidate is transposed onto the piece (the shift that best aligns their
   pitch-class histograms), each sounding quarter becomes its voicing as pitch classes
   from the bass up, and the score is the longest common subsequence of the two voicing
   sequences over the shorter length. The subsequence tolerates an inserted beat or a
   changed chord; the voicing tells a different harmonisation of the same tune apart.

`python -m training.music.jsb_overlap_report` prints the score histograms the
threshold was read from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parents[2]
# Same file and override as the JSB benchmark (training/music/jsb.py).
DEFAULT_JSB_DATA = REPO_ROOT.parent / "shared/data/jsb-chorales/jsb-chorales-quarter.json"
JSB_DATA_ENV = "CADENZA_JSB_DATA"
SPLITS = ("train", "valid", "test")
HELD_OUT = ("valid", "test")
N_GRAM = 3
CANDIDATES = 5
# Read off the histograms printed by training/music/jsb_overlap_report.py: the best score
# of each of the 416 music21 chorales is either <= 0.45 (22 with no JSB twin) or >= 0.75
# (394), none in between; JSB's own 16th-note file scores >= 0.85 against its quarter file.
MATCH_THRESHOLD = 0.6
# Parts taken for the match when a chorale also has instrumental parts (trumpets, timpani).
CHOIR = ("soprano", "alto", "tenor", "bass")

Frames = list[frozenset[int]]
# One quarter of the fingerprint: (bass motion mod 12, None on the first; pitch classes
# over the bass).
Quarter = tuple[int | None, tuple[int, ...]]
NGram = tuple[Quarter, ...]


def jsb_data_path() -> Path:
    """The JSB quarter-note file: $CADENZA_JSB_DATA, else the shared copy."""
    return Path(os.environ.get(JSB_DATA_ENV) or DEFAULT_JSB_DATA)


def piece_frames(notes: npt.NDArray[np.integer], pad_steps: int, steps_per_quarter: int = 4,
                 part_names: list[str] | None = None) -> Frames:
    """The pitches sounding at each quarter of a piece, from its first beat (pickup) on.

    `notes` rows are (pitch, start, end, part) in steps. With choir parts named among
    others, only the choir counts, so trumpets or timpani do not hide a chorale.
    """
    if part_names:
        choir = [i for i, name in enumerate(part_names)
                 if name.lower().split()[:1] and name.lower().split()[0] in CHOIR]
        if len(CHOIR) <= len(choir) < len(part_names):
            notes = notes[np.isin(notes[:, 3], choir)]
    if len(notes) == 0:
        return []
    frames = []
    for step in range(pad_steps, int(notes[:, 2].max()), steps_per_quarter):
        sounding = notes[(notes[:, 1] <= step) & (notes[:, 2] > step), 0]
        frames.append(frozenset(int(p) for p in sounding))
    return frames


def downsample(frames16: list[list[float]], factor: int = 4) -> Frames:
    """Quarter frames from the 16th-note JSB file (every 4th frame; unisons merge)."""
    return [frozenset(int(p) for p in frame) for frame in frames16[::factor]]


def fingerprint(frames: Frames) -> frozenset[NGram]:
    """Transposition-invariant n-grams of (bass motion mod 12, pitch classes over the bass)."""
    quarters: list[Quarter] = []
    previous_bass: int | None = None
    for frame in frames:
        if not frame:
            continue
        bass = min(frame)
        motion = None if previous_bass is None else (bass - previous_bass) % 12
        quarters.append((motion, tuple(sorted({(p - bass) % 12 for p in frame}))))
        previous_bass = bass
    return frozenset(tuple(quarters[i:i + N_GRAM]) for i in range(len(quarters) - N_GRAM + 1))


def _overlap(a: frozenset[NGram], b: frozenset[NGram]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def _histogram(frames: Frames) -> npt.NDArray[np.float64]:
    counts = np.zeros(12)
    for frame in frames:
        for pitch in frame:
            counts[pitch % 12] += 1
    return counts


def _voicings(frames: Frames, shift: int) -> list[tuple[int, ...]]:
    return [tuple((p + shift) % 12 for p in sorted(frame)) for frame in frames if frame]


def _common_subsequence(a: list[tuple[int, ...]], b: list[tuple[int, ...]]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def similarity(a: Frames, b: Frames) -> float:
    """Share of the shorter piece's voicings that the other has in the same order (0-1)."""
    ha, hb = _histogram(a), _histogram(b)
    shift = int(np.argmax([np.dot(np.roll(ha, s), hb) for s in range(12)]))
    va, vb = _voicings(a, shift), _voicings(b, 0)
    if not va or not vb:
        return 0.0
    return _common_subsequence(va, vb) / min(len(va), len(vb))


@dataclass(frozen=True)
class Match:
    """A JSB piece a corpus piece matched, and how well."""

    split: str
    index: int
    score: float


class JsbIndex:
    """Every JSB piece (quarter-note file, all splits) ready to be matched."""

    def __init__(self, path: Path | None = None) -> None:
        data = json.loads(Path(path or jsb_data_path()).read_text())
        self.pieces = [(split, index, [frozenset(int(p) for p in f) for f in piece])
                       for split in SPLITS for index, piece in enumerate(data[split])]
        self.prints = [fingerprint(frames) for _, _, frames in self.pieces]

    def matches(self, frames: Frames, splits: tuple[str, ...] = SPLITS) -> list[Match]:
        """The CANDIDATES most likely JSB pieces among `splits`, scored, best first."""
        own = fingerprint(frames)
        overlaps = {k: _overlap(own, self.prints[k])
                    for k, (split, _, _) in enumerate(self.pieces) if split in splits}
        # No shared n-gram at all (a folk tune, a piano piece): no chorale to score.
        ranked = sorted((k for k in overlaps if overlaps[k] > 0), key=lambda k: -overlaps[k])
        ranked = ranked[:CANDIDATES]
        found = [Match(self.pieces[k][0], self.pieces[k][1], similarity(frames, self.pieces[k][2]))
                 for k in ranked]
        return sorted(found, key=lambda m: -m.score)

    def best(self, frames: Frames, splits: tuple[str, ...] = SPLITS) -> Match | None:
        """The best-scoring JSB piece among `splits`, or None without candidates."""
        found = self.matches(frames, splits)
        return found[0] if found else None

    def is_held_out(self, frames: Frames) -> bool:
        """Whether the piece is in the JSB valid or test split (so training must skip it)."""
        match = self.best(frames, HELD_OUT)
        return match is not None and match.score >= MATCH_THRESHOLD
