"""The catalogue's similarity space, copied into recommend's memory for the content signal.

Asking retrieval for an example search on every Recommend call cost most of the call
(about 180 ms at Last.fm scale in embedded Qdrant). Recommend keeps a copy of every
track's stored vectors instead (ListTracks with include_vectors) and scores all of them in
one matrix product, by the rule of retrieval's example search (SearchTracks examples,
space AUTO, default weights), so the content signal ranks as it did:
- every example has audio: the audio space, where the query is each feature group's unit
  direction of 2 * mean(positives) - mean(negatives), scaled by the group's default
  weight, and a track's score is its dot product with the query (tracks with audio only);
- otherwise the text space: cosine with 2 * mean(positives) - mean(negatives) of the
  examples' text embeddings (Qdrant's average_vector rule), over every track.
The examples are left out; so are tracks the filter rejects.

Staleness: `ContentRefresher` copies the catalogue again when retrieval's revision
changes, checked every `refresh_s`, and after every model publish; a track ingested or
deleted is seen within refresh_s plus the copy's duration. A request whose examples
the copy lacks yet goes to retrieval's example search, as without a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.recommend import metrics
from services.recommend.catalog import (
    CandidateFilter,
    CatalogTrack,
    CatalogVectors,
    FeatureGroup,
    Scored,
)

logger = logging.getLogger(__name__)

BOUNDED = ("tempo_bpm", "loudness_db", "brightness_hz", "duration_s")


@dataclass(frozen=True)
class Snapshot:
    """The catalogue's tracks and vectors at one retrieval revision."""

    revision: str
    tracks: list[CatalogTrack]
    audio: np.ndarray  # tracks x audio dims (float32), zero rows for metadata-only tracks
    has_audio: np.ndarray  # bool per track
    text: np.ndarray  # tracks x text dims (float32), unit rows
    groups: list[FeatureGroup]

    @classmethod
    def of(cls, copy: CatalogVectors) -> Snapshot:
        """The arrays of a catalogue copy."""
        revision, rows, groups = copy.revision, copy.rows, copy.groups
        audio_dims = sum(g.dimensions for g in groups)
        text_dims = max((len(t) for _, _, t in rows), default=0)
        audio = np.zeros((len(rows), audio_dims), dtype=np.float32)
        text = np.zeros((len(rows), text_dims), dtype=np.float32)
        has_audio = np.zeros(len(rows), dtype=bool)
        for i, (_, a, t) in enumerate(rows):
            if len(a) == audio_dims and audio_dims:
                audio[i] = a
                has_audio[i] = True
            if len(t) == text_dims:
                text[i] = t
        norms = np.linalg.norm(text, axis=1, keepdims=True)
        text /= np.where(norms > 0, norms, 1.0)  # Qdrant keeps cosine vectors at unit length
        return cls(revision, [r[0] for r in rows], audio, has_audio, text, groups)


class ContentIndex:
    """Example search over a snapshot of the catalogue; see the module docstring."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        tracks = snapshot.tracks
        self._row = {t.track_id: i for i, t in enumerate(tracks)}
        self._artists = np.array([t.artist for t in tracks], dtype=object)
        self._by_tag: dict[str, list[int]] = {}
        for i, t in enumerate(tracks):
            for tag in t.tags:
                self._by_tag.setdefault(tag, []).append(i)
        self._features = {name: np.array([t.features.get(name, np.nan) for t in tracks],
                                         dtype=np.float64) for name in BOUNDED}
        total = sum(g.default_weight for g in snapshot.groups) or 1.0
        self._weights = np.concatenate([np.full(g.dimensions, g.default_weight / total)
                                        for g in snapshot.groups]) if snapshot.groups else (
            np.zeros(0))
        self._slices = []
        start = 0
        for g in snapshot.groups:
            self._slices.append(slice(start, start + g.dimensions))
            start += g.dimensions

    def __len__(self) -> int:
        return len(self.snapshot.tracks)

    @property
    def revision(self) -> str:
        """Retrieval's revision the copy was made at."""
        return self.snapshot.revision

    def like(self, positive: list[str], negative: list[str], where: CandidateFilter,
             limit: int) -> list[Scored] | None:
        """The `limit` tracks most like the positives and unlike the negatives; None when
        an example is not in the copy (ingested since: ask retrieval instead)."""
        if any(t not in self._row for t in (*positive, *negative)) or not positive:
            return None
        pos = [self._row[t] for t in positive]
        neg = [self._row[t] for t in negative]
        snap = self.snapshot
        if bool(snap.has_audio[pos + neg].all()) and snap.groups:
            scores = snap.audio @ self._audio_query(pos, neg)
            allowed = snap.has_audio.copy()
        else:
            target = snap.text[pos].astype(np.float64).mean(axis=0)
            if neg:
                target = 2 * target - snap.text[neg].astype(np.float64).mean(axis=0)
            norm = float(np.linalg.norm(target))
            scores = snap.text @ (target / norm if norm > 0 else target).astype(np.float32)
            allowed = np.ones(len(scores), dtype=bool)
        allowed[pos + neg] = False
        allowed &= self._mask(where)
        candidates = np.flatnonzero(allowed)
        if not len(candidates):
            return []
        k = min(limit, len(candidates))
        picked = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        picked = picked[np.lexsort((picked, -scores[picked]))]
        return [Scored(snap.tracks[i], float(scores[i])) for i in picked]

    def _audio_query(self, pos: list[int], neg: list[int]) -> np.ndarray:
        """retrieval's example_blocks then weighted_query, at the default weights."""
        audio = self.snapshot.audio
        mean = audio[pos].astype(np.float64).mean(axis=0)
        target = 2 * mean - audio[neg].astype(np.float64).mean(axis=0) if neg else mean
        out = np.zeros_like(target)
        for part in self._slices:
            block, norm = target[part], float(np.linalg.norm(target[part]))
            if norm < 1e-6:
                block, norm = mean[part], float(np.linalg.norm(mean[part]))
            out[part] = block / max(norm, 1e-12)
        query: np.ndarray = (out * self._weights).astype(np.float32)
        return query

    def _mask(self, where: CandidateFilter) -> np.ndarray:
        """The tracks the filter keeps (retrieval's filter semantics)."""
        mask = np.ones(len(self), dtype=bool)
        if where.artists:
            mask &= np.isin(self._artists, list(where.artists))
        if where.tags:
            tagged = np.zeros(len(self), dtype=bool)
            for tag in where.tags:
                tagged[self._by_tag.get(tag, [])] = True
            mask &= tagged
        for name in BOUNDED:
            bounds = getattr(where, name)
            values = self._features[name]
            with np.errstate(invalid="ignore"):
                if bounds.min is not None:
                    mask &= values >= bounds.min
                if bounds.max is not None:
                    mask &= values <= bounds.max
        return mask


class ContentSource(Protocol):
    """Where a snapshot comes from: retrieval's ListTracks (RetrievalCatalog implements it)."""

    async def revision(self) -> str:
        """The catalogue's current revision."""
        ...

    async def vectors(self, revision: str) -> CatalogVectors:
        """Every track with its vectors, read after `revision` was (so at least as new)."""
        ...


class ContentRefresher:
    """Keeps a ContentIndex current: a copy at start, then again when the revision moves."""

    def __init__(self, source: ContentSource, refresh_s: float) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self.index: ContentIndex | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    async def refresh(self, force: bool = False) -> None:
        """Copies the catalogue when its revision differs from the copy's (or `force`)."""
        async with self._lock:
            revision = await self.source.revision()
            if not force and self.index is not None and self.index.revision == revision:
                metrics.CONTENT_COPIED.set(time.time())  # still current
                return
            started = time.perf_counter()
            copy = await self.source.vectors(revision)
            snapshot = await asyncio.to_thread(Snapshot.of, copy)
            self.index = await asyncio.to_thread(ContentIndex, snapshot)
            metrics.CONTENT_TRACKS.set(len(snapshot.tracks))
            metrics.CONTENT_COPIED.set(time.time())
            logger.info("content index: %d tracks at revision %s in %.1f s", len(snapshot.tracks),
                        snapshot.revision, time.perf_counter() - started)

    async def refresh_quietly(self) -> None:
        """`refresh`, logging a failure instead of raising it (retrieval may be down)."""
        try:
            await self.refresh()
        except Exception as error:  # keep the copy, the periodic check tries again
            logger.warning("content index refresh failed: %s", error)

    def refresh_soon(self) -> None:
        """Asks the periodic check to run now (after a publish). It runs in the check's
        own task, so no request's deadline or cancellation reaches the copy."""
        self._wake.set()

    async def start(self) -> None:
        """Makes the first copy (retrieval down: logged, retried), then starts the check."""
        await self.refresh_quietly()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stops the periodic check."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_s)
            self._wake.clear()
            await self.refresh_quietly()
