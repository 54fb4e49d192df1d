"""The seeds signal: where to start for a listener without history (and a steer for any).

Seed tracks find tracks like them (retrieval's example search); seed artists and tags
find catalog tracks with that artist or tag; free text goes to retrieval's text search.
A track found by several seeds keeps its best score.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from cadenza.kit.errors import NotFound
from services.recommend.catalog import CandidateFilter, Catalog

CANDIDATES = 100


@dataclass(frozen=True)
class Seeds:
    """What the caller gave to start from: tracks, artists, tags, free text."""

    track_ids: tuple[str, ...] = ()
    artists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    text: str = ""

    def empty(self) -> bool:
        """True when no seed was given."""
        return not (self.track_ids or self.artists or self.tags or self.text.strip())


async def seed_candidates(catalog: Catalog, seeds: Seeds,
                          where: CandidateFilter) -> dict[str, tuple[float, str]]:
    """Candidates from each kind of seed, merged (best score per track)."""
    jobs = []
    if seeds.track_ids:
        jobs.append(_like_tracks(catalog, seeds.track_ids, where))
    if seeds.artists:
        jobs.append(_matching(catalog, replace(where, artists=seeds.artists),
                              "by an artist you picked"))
    if seeds.tags:
        jobs.append(_matching(catalog, replace(where, tags=seeds.tags),
                              f"tagged {', '.join(seeds.tags[:3])}"))
    if seeds.text.strip():
        jobs.append(_text(catalog, seeds.text, where))
    merged: dict[str, tuple[float, str]] = {}
    for found in await asyncio.gather(*jobs):
        for track_id, (score, reason) in found.items():
            if track_id not in merged or score > merged[track_id][0]:
                merged[track_id] = (score, reason)
    return merged


async def _like_tracks(catalog: Catalog, track_ids: tuple[str, ...],
                       where: CandidateFilter) -> dict[str, tuple[float, str]]:
    found = await catalog.tracks(list(track_ids))
    for i, track_id in enumerate(track_ids):
        if track_id not in found:
            raise NotFound(f"seeds.track_ids[{i}]: track '{track_id}' is not in the catalog")
    first = found[track_ids[0]].title or track_ids[0]
    hits = await catalog.like_examples(list(track_ids), [], where, CANDIDATES)
    best = max((h.score for h in hits), default=0.0) or 1.0
    return {h.track.track_id: (max(h.score, 0.0) / best, f"because you picked {first}")
            for h in hits}


async def _matching(catalog: Catalog, where: CandidateFilter,
                    reason: str) -> dict[str, tuple[float, str]]:
    return {t.track_id: (1.0, reason) for t in await catalog.matching(where, CANDIDATES)}


async def _text(catalog: Catalog, text: str,
                where: CandidateFilter) -> dict[str, tuple[float, str]]:
    hits = await catalog.search_text(text, where, CANDIDATES)
    best = max((h.score for h in hits), default=0.0) or 1.0
    return {h.track.track_id: (max(h.score, 0.0) / best, f"matches \u201c{text[:40]}\u201d")
            for h in hits}
