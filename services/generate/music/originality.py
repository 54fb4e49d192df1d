"""The originality figure: the longest run of a piece's notes found in the training corpus.

A note's symbol is (interval from the previous note of its voice, duration), so a
transposed copy counts as copied. A run of L notes matches when its durations and its
L-1 inner intervals match; its first note matches on duration alone. Runs never cross
the boundary between two corpus sequences, nor between two voices of the piece.

The corpus (`originality.npz`) holds each voice's note sequence as (pitch, duration in
steps); the loader builds a suffix array over it, sorted on the first few dozen symbols
(numpy prefix doubling), and a query binary-searches every position of the piece at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.generate.music.tokens import Note

ORIGINALITY_FILE = "originality.npz"
# The proto names the source only for runs long enough to matter.
SOURCE_MIN_RUN_NOTES = 8
# The suffix array is sorted on at least this many pair symbols (notes - 1); longer
# matches are found by extending over the block of suffixes that share that prefix.
# 12 keeps the build to two sorts for a corpus with up to ~32k distinct symbols.
SORTED_PREFIX_SYMBOLS = 12
# Symbols pack interval and both durations into 24 bits; longer durations count as this.
MAX_DURATION_STEPS = 255
# A block of corpus suffixes sharing a whole sorted prefix is extended at most this far
# (only a corpus with thousands of identical long passages reaches it).
MAX_BLOCK_CANDIDATES = 20_000
_CORPUS_END = -1  # sentinel after each corpus sequence
_QUERY_END = -2  # sentinel after each voice of the piece; never equals a corpus symbol

Int64s = npt.NDArray[np.int64]


def write_index(path: str | os.PathLike[str],
                sequences: Iterable[tuple[str, Sequence[tuple[int, int]]]]) -> None:
    """Writes originality.npz: each (source name, [(pitch, duration_steps), ...]) sequence.

    One sequence is one voice of one corpus piece, in note order. Arrays: `notes` int32
    [N, 2], `offsets` int64 [S+1] (sequence boundaries in `notes`), `names` unicode [S].
    """
    names: list[str] = []
    chunks: list[npt.NDArray[np.int32]] = []
    offsets = [0]
    for name, notes in sequences:
        array = np.asarray(notes, dtype=np.int32).reshape(-1, 2)
        if array.size and (array[:, 1] <= 0).any():
            raise ValueError(f"{name}: note durations must be > 0 steps")
        names.append(name)
        chunks.append(array)
        offsets.append(offsets[-1] + len(array))
    notes_array = np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int32)
    # Written to a temporary name first so a reader never sees half a file.
    path = Path(path)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, notes=notes_array, offsets=np.asarray(offsets, np.int64),
                        names=np.asarray(names, dtype=np.str_))
    partial.replace(path)


def voices_of(notes: Iterable[Note]) -> list[list[Note]]:
    """The piece's notes grouped by voice index (highest voice first), each in start order."""
    by_voice: dict[int, list[Note]] = {}
    for note in notes:
        by_voice.setdefault(note.voice, []).append(note)
    return [sorted(by_voice[voice], key=lambda n: (n.start, -n.pitch))
            for voice in sorted(by_voice)]


def _pair_codes(pitches: npt.NDArray[np.integer], durations: npt.NDArray[np.integer]) -> Int64s:
    """Symbol of each note after the first: (previous duration, interval, duration)."""
    capped: Int64s = np.minimum(durations.astype(np.int64), MAX_DURATION_STEPS)
    wide = pitches.astype(np.int64)
    intervals: Int64s = np.clip(wide[1:] - wide[:-1], -127, 127) + 128
    return (capped[:-1] << 16) | (intervals << 8) | capped[1:]


class CopiedRun(NamedTuple):
    """The longest run copied from the corpus and the piece it came from."""

    length_notes: int
    source: str  # "" when shorter than SOURCE_MIN_RUN_NOTES


class OriginalityIndex:
    """The training corpus's note sequences, searchable for the longest copied run."""

    def __init__(self, notes: npt.ArrayLike, offsets: npt.ArrayLike, names: Iterable[str]
                 ) -> None:
        notes = np.asarray(notes).reshape(-1, 2)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.names = [str(name) for name in names]
        if len(self.offsets) != len(self.names) + 1 or self.offsets[-1] != len(notes):
            raise ValueError("originality index: offsets do not match notes and names")
        self.n_notes = len(notes)
        self._durations = np.flatnonzero(np.bincount(
            np.minimum(notes[:, 1], MAX_DURATION_STEPS), minlength=MAX_DURATION_STEPS + 1))
        # Text: at position k the symbol joining note k to note k+1 of the same sequence,
        # or a sentinel on each sequence's last note.
        text = np.full(self.n_notes, _CORPUS_END, dtype=np.int64)
        if self.n_notes > 1:
            text[:-1] = _pair_codes(notes[:, 0], notes[:, 1])
            text[self.offsets[1:-1] - 1] = _CORPUS_END
        self._suffixes, self._blocks, self._block_bounds, self.sorted_symbols = _suffix_array(
            text, self.offsets)
        self._text = np.concatenate(
            [text, np.full(self.sorted_symbols + 1, _CORPUS_END, dtype=np.int64)])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OriginalityIndex:
        """Reads an index saved as originality.npz."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["notes"], data["offsets"], data["names"])

    def longest_copied_run(self, voices: Sequence[Sequence[Note]]) -> CopiedRun:
        """The longest run of consecutive notes of one voice that occurs in one corpus sequence.

        `voices` are the notes of each voice index in start order (see `voices_of`).
        """
        voices = [voice for voice in voices if voice]
        if not voices or self.n_notes == 0:
            return CopiedRun(0, "")
        query, starts = _query_text(voices)
        best_pairs, best_position = -1, -1
        if len(starts):
            lengths, positions = self._matches(query, starts)
            at = int(np.argmax(lengths))
            best_pairs, best_position = int(lengths[at]), int(positions[at])
        if best_pairs <= 0:
            durations = np.clip([n.end - n.start for v in voices for n in v], 0,
                                MAX_DURATION_STEPS)
            return CopiedRun(int(np.isin(durations, self._durations).any()), "")
        length = best_pairs + 1
        if length < SOURCE_MIN_RUN_NOTES:
            return CopiedRun(length, "")
        sequence = int(np.searchsorted(self.offsets, best_position, side="right")) - 1
        return CopiedRun(length, self.names[sequence])

    def _matches(self, query: Int64s, starts: Int64s) -> tuple[Int64s, Int64s]:
        """For each query position: longest common prefix with any corpus suffix, and where."""
        width = self.sorted_symbols
        span = np.arange(width)
        # Padding so every window of the sorted width can be gathered.
        query = np.concatenate([query, np.full(width, _QUERY_END, dtype=np.int64)])
        windows = query[starts[:, None] + span]
        n = len(self._suffixes)
        if n == 0:
            return np.zeros(len(starts), dtype=np.int64), np.zeros(len(starts), dtype=np.int64)
        low = np.zeros(len(starts), dtype=np.int64)
        high = np.full(len(starts), n, dtype=np.int64)
        # Lower bound: the first suffix whose sorted prefix is >= the query's.
        while True:
            active = np.flatnonzero(low < high)
            if not active.size:
                break
            middle = (low[active] + high[active]) // 2
            less = _less(self._text[self._suffixes[middle][:, None] + span], windows[active])
            low[active] = np.where(less, middle + 1, low[active])
            high[active] = np.where(less, high[active], middle)
        lengths = np.zeros(len(starts), dtype=np.int64)
        positions = np.zeros(len(starts), dtype=np.int64)
        for neighbour in (low - 1, low):
            ok = (neighbour >= 0) & (neighbour < n)
            suffix = self._suffixes[np.clip(neighbour, 0, n - 1)]
            common = np.where(ok, _common_prefix(self._text[suffix[:, None] + span], windows), 0)
            better = common > lengths
            lengths = np.where(better, common, lengths)
            positions = np.where(better, suffix, positions)
        full = np.flatnonzero(lengths == width)
        if full.size:
            lengths[full], positions[full] = self._extend(query, starts[full], low[full])
        return lengths, positions

    def _extend(self, query: Int64s, starts: Int64s, firsts: Int64s) -> tuple[Int64s, Int64s]:
        """Longest matches over the blocks of suffixes that share a whole sorted prefix.

        `firsts` are the first sorted slots of each query position's block; every
        (position, candidate) pair is extended together, 64 symbols at a time.
        """
        ends = np.minimum(self._block_bounds[self._blocks[firsts] + 1],
                          firsts + MAX_BLOCK_CANDIDATES)
        sizes = ends - firsts
        rows = np.repeat(np.arange(len(starts)), sizes)
        slots = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        candidates = self._suffixes[np.repeat(firsts, sizes) + slots]
        query_at = starts[rows]
        width = self.sorted_symbols
        common = np.full(len(rows), width, dtype=np.int64)
        alive = np.arange(len(rows))
        chunk = np.arange(64)
        while alive.size:
            offset = common[alive][:, None] + chunk
            want = query[np.minimum(query_at[alive][:, None] + offset, len(query) - 1)]
            have = self._text[np.minimum(candidates[alive][:, None] + offset,
                                         len(self._text) - 1)]
            more = _common_prefix(have, want)
            common[alive] += more
            alive = alive[more == len(chunk)]
        lengths = np.zeros(len(starts), dtype=np.int64)
        np.maximum.at(lengths, rows, common)
        best = common == lengths[rows]
        positions = np.zeros(len(starts), dtype=np.int64)
        positions[rows[best]] = candidates[best]
        return lengths, positions


def _query_text(voices: Sequence[Sequence[Note]]) -> tuple[Int64s, Int64s]:
    """The piece's symbols, voice after voice, each voice ended by a sentinel."""
    parts: list[Int64s] = []
    for voice in voices:
        pitches = np.array([note.pitch for note in voice])
        durations = np.array([note.end - note.start for note in voice])
        parts.append(_pair_codes(pitches, durations))
        parts.append(np.array([_QUERY_END], dtype=np.int64))
    text = np.concatenate(parts)
    return text, np.flatnonzero(text != _QUERY_END)


def _common_prefix(a: Int64s, b: Int64s) -> Int64s:
    """Per row, how many leading symbols are equal (sentinels never match)."""
    differ: npt.NDArray[np.bool_] = a != b
    first = np.argmax(differ, axis=1)
    prefix: Int64s = np.where(differ.any(axis=1), first, a.shape[1])
    return prefix


def _less(a: Int64s, b: Int64s) -> npt.NDArray[np.bool_]:
    """Per row, whether a sorts before b (lexicographic; equal is not less)."""
    differ: npt.NDArray[np.bool_] = a != b
    first = np.argmax(differ, axis=1)
    rows = np.arange(len(a))
    before: npt.NDArray[np.bool_] = a[rows, first] < b[rows, first]
    return differ.any(axis=1) & before


def _suffix_array(text: Int64s, offsets: Int64s) -> tuple[Int64s, Int64s, Int64s, int]:
    """Corpus suffixes sorted on their first `h >= SORTED_PREFIX_SYMBOLS` symbols.

    Prefix doubling, generalised: each round packs as many ranks of the current prefix
    length as fit in 63 bits into one sort key, so 2M symbols sort in two rounds. A
    suffix ends at its sequence's sentinel (rank 0, below every symbol). Returns the
    suffix positions, each sorted slot's block id (blocks share the whole prefix), block
    bounds and h.
    """
    positions = np.flatnonzero(text != _CORPUS_END)
    if not positions.size:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(1, dtype=np.int64), SORTED_PREFIX_SYMBOLS
    # Symbols left before each position's sequence ends (at its sentinel).
    remaining = np.repeat(offsets[1:] - 1, np.diff(offsets))[positions] - positions
    rank = np.zeros(len(text), dtype=np.int64)
    rank[positions] = _symbol_ranks(text[positions])
    h = 1
    while True:
        bits = int(rank.max()).bit_length()
        parts = max(2, 63 // bits)
        key = rank[positions]
        for part in range(1, parts):
            component = rank.take(positions + part * h, mode="clip")
            component[remaining <= part * h] = 0
            key <<= bits
            key |= component
        h *= parts
        order = np.argsort(key)
        ranked = key[order]
        new_block = np.empty(len(ranked), dtype=bool)
        new_block[0] = True
        np.not_equal(ranked[1:], ranked[:-1], out=new_block[1:])
        blocks = np.cumsum(new_block) - 1
        if h >= SORTED_PREFIX_SYMBOLS or blocks[-1] == len(positions) - 1:
            bounds = np.append(np.flatnonzero(new_block), len(positions))
            return positions[order], blocks, bounds, h
        rank[positions[order]] = blocks + 1


def _symbol_ranks(codes: Int64s) -> Int64s:
    """Dense ranks (from 1) of pair symbols, in the order of their codes.

    Ranked per component first (a few dozen durations and intervals occur), so the
    dense step is a bincount, not a sort of the whole corpus.
    """
    fields = [(codes >> 16) & 0xFF, (codes >> 8) & 0xFF, codes & 0xFF]
    combined = np.zeros(len(codes), dtype=np.int64)
    for field in fields:
        present = np.bincount(field, minlength=256) > 0
        table = np.cumsum(present) - 1
        combined = combined * int(present.sum()) + table[field]
    size = int(combined.max()) + 1
    if size > 1 << 22:  # too many combinations for a table
        return np.searchsorted(np.unique(combined), combined) + 1
    table = np.cumsum(np.bincount(combined, minlength=size) > 0)
    return table[combined]
