"""R(x) = sum_i w_i r_i(x): the sources' candidates blended into one capped list.

Each source proposes candidates with scores in [0, 1] (`Signal`). The blend sums the
weighted scores of every candidate in one vectorised pass, orders them (score, then track
id), and only then walks the best ones: looking tracks up, applying the filter and the
cap per artist, and wording the reason, for the few that make the list rather than for
every candidate.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import numpy as np

from services.recommend import targets
from services.recommend.catalog import CandidateFilter, CatalogTrack

Lookup = Callable[[list[str]], Awaitable[dict[str, CatalogTrack]]]


@dataclass(frozen=True)
class Signal:
    """One source's candidates: unique track ids, scores in [0, 1], and their reasons."""

    ids: list[str]
    scores: np.ndarray  # float64, aligned with ids
    # The reason of candidate k, or one reason for them all (worded only for the list).
    reasons: Callable[[int], str] | str

    @classmethod
    def of(cls, scored: dict[str, tuple[float, str]]) -> Signal:
        """A signal from track id -> (score, reason)."""
        reasons = [r for _, r in scored.values()]
        return cls(list(scored), np.array([s for s, _ in scored.values()], dtype=np.float64),
                   reasons.__getitem__)

    def reason(self, k: int) -> str:
        """Why candidate k was proposed."""
        return self.reasons if isinstance(self.reasons, str) else self.reasons(k)


@dataclass(frozen=True)
class Item:
    """A recommended track, its blended score, each source's share and the reason."""

    track: CatalogTrack
    score: float
    contributions: dict[str, float]
    reason: str


async def blend(signals: dict[str, Signal], weights: dict[str, float], where: CandidateFilter,
                target_values: dict[str, float], exclude: set[str], max_per_artist: int,
                limit: int, lookup: Lookup) -> list[Item]:
    """The list: candidates of every source, excluded ones left out, best first."""
    # Every candidate once, in the order the sources first name them.
    ids = list(dict.fromkeys(itertools.chain.from_iterable(s.ids for s in signals.values())))
    position = dict(zip(ids, range(len(ids)), strict=True))
    totals = np.zeros(len(ids))
    slots: dict[str, np.ndarray] = {}  # source -> candidate k per position (-1: not one)
    scale: dict[str, float] = {}
    for source, signal in signals.items():
        if source == "targets" and target_values:
            continue  # every candidate gets its closeness below
        # Without targets, the targets source is the catalogue at an empty start: its
        # score (0) stands unweighted, as the only candidates there are.
        scale[source] = 1.0 if source == "targets" else weights[source]
        at = np.fromiter(map(position.__getitem__, signal.ids), np.int64, len(signal.ids))
        slots[source] = np.full(len(ids), -1)
        slots[source][at] = np.arange(len(at))
        totals[at] += scale[source] * signal.scores
    closeness = np.zeros(len(ids))
    if target_values:
        tracks = await lookup(ids)
        closeness = weights["targets"] * np.array(
            [targets.closeness(tracks[t].features, target_values) if t in tracks else 0.0
             for t in ids])
        totals += closeness
    keep = np.flatnonzero(~np.fromiter(map(exclude.__contains__, ids), bool, len(ids)))

    def item(u: int, track: CatalogTrack) -> Item:
        parts: dict[str, tuple[float, str]] = {}
        for source, slot in slots.items():
            k = int(slot[u])
            if k >= 0:
                signal = signals[source]
                parts[source] = (scale[source] * float(signal.scores[k]), signal.reason(k))
        if target_values:
            parts["targets"] = (float(closeness[u]), targets.describe(target_values))
        reason = max(parts.values(), key=lambda p: p[0])[1] if parts else ""
        return Item(track, float(totals[u]), {s: p for s, (p, _) in parts.items()}, reason)

    out: list[Item] = []
    per_artist: dict[str, int] = {}
    for block in _best_first(keep, totals, ids, max(4 * limit, 50)):
        tracks = await lookup([ids[u] for u in block])  # also drops tracks deleted since
        for u in block:
            track = tracks.get(ids[u])
            if track is None or not within(track, where):
                continue
            artist = track.artist
            if max_per_artist and artist and per_artist.get(artist, 0) >= max_per_artist:
                continue
            per_artist[artist] = per_artist.get(artist, 0) + 1
            out.append(item(u, track))
            if len(out) == limit:
                return out
    return out


def _best_first(candidates: np.ndarray, totals: np.ndarray, ids: list[str],
                chunk: int) -> Iterator[list[int]]:
    """The candidates by (-total, track id), in blocks of about `chunk`. Only the best
    block is sorted unless the walk needs more: the list takes a few dozen of ~1,000."""
    rest = candidates
    while len(rest):
        if len(rest) > chunk:
            # Everything scoring at least the chunk-th best total, ties included.
            cut = -np.partition(-totals[rest], chunk - 1)[chunk - 1]
            head, rest = rest[totals[rest] >= cut], rest[totals[rest] < cut]
        else:
            head, rest = rest, rest[:0]
        names = np.array([ids[u] for u in head])
        yield [int(u) for u in head[np.lexsort((names, -totals[head]))]]


def within(track: CatalogTrack, where: CandidateFilter) -> bool:
    """The min_/max_ bounds, for candidates that did not come through a filtered search."""
    for name in ("tempo_bpm", "loudness_db", "brightness_hz", "duration_s"):
        bounds = getattr(where, name)
        if not bounds.given():
            continue
        value = track.features.get(name)
        if value is None:
            return False
        if (bounds.min is not None and value < bounds.min) or (
                bounds.max is not None and value > bounds.max):
            return False
    if where.artists and track.artist not in where.artists:
        return False
    return not where.tags or bool(set(where.tags) & set(track.tags))
