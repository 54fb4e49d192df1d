"""The catalog's logic: ingest, get, delete, list and weighted search over the store."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from cadenza.kit.errors import InvalidArgument, NotFound, ResourceExhausted
from cadenza.kit.validate import check_id
from services.retrieval import metrics
from services.retrieval.analysis import AudioAnalyser
from services.retrieval.errors import AudioError
from services.retrieval.model import (
    AudioFeatures,
    ExampleSpace,
    Hit,
    Track,
    TrackFilter,
    TrackMetadata,
)
from services.retrieval.similarity import (
    audio_vector,
    contributions,
    example_blocks,
    weighted_query,
)
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR, StoredTrack, VectorStore
from services.retrieval.text_embedding import TextEncoder, track_text

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_EXAMPLES = 100  # positive and negative example tracks in one query, in all
MIN_YEAR, MAX_YEAR = 1, 9999  # a calendar year, as google.protobuf.Timestamp has them


@dataclass(frozen=True)
class Limits:
    """Upload size and duration bounds, for ingested files and for search clips."""

    max_upload_bytes: int
    max_audio_duration_s: float
    min_clip_s: float = 5.0
    max_clip_s: float = 60.0


@dataclass(frozen=True)
class SearchPage:
    """One page of ranked hits, the next page's offset (None at the end), the weights used."""

    hits: list[Hit]
    next_offset: int | None
    weights: dict[str, float]


def check_metadata(metadata: TrackMetadata) -> None:
    """Raises InvalidArgument naming the first field of an ingest header that is not
    acceptable."""
    check_id("header.metadata.track_id", metadata.track_id)
    if not metadata.title.strip():
        raise InvalidArgument("header.metadata.title", "is required")
    if metadata.year is not None and not MIN_YEAR <= metadata.year <= MAX_YEAR:
        raise InvalidArgument("header.metadata.year", f"must be {MIN_YEAR}-{MAX_YEAR}, "
                              f"got {metadata.year} (leave it unset when unknown)")


class Catalog:
    """Owns the store. Store calls run on one thread (embedded Qdrant is not
    thread-safe); feature extraction and text encoding on a small pool."""

    def __init__(self, store: VectorStore, encoder: TextEncoder, analyser: AudioAnalyser,
                 limits: Limits, compute_workers: int = 1) -> None:
        self.store = store
        self.encoder = encoder
        self.analyser = analyser
        self.limits = limits
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="store")
        # What `revision` is made of: this process's start and its writes since.
        self._started = uuid.uuid4().hex[:12]
        self._writes = 0
        self._compute = ThreadPoolExecutor(compute_workers, thread_name_prefix="features")

    async def _in_store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, fn, *args)

    async def _compute_on_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._compute, fn, *args)

    # -- ingest ------------------------------------------------------------------------

    def check_upload_size(self, size: int) -> None:
        """Raises ResourceExhausted once an upload is over max_upload_bytes."""
        if size > self.limits.max_upload_bytes:
            raise ResourceExhausted(
                f"audio upload is over the limit of {self.limits.max_upload_bytes} bytes; "
                "send a shorter or more compressed file")

    def _features(self, audio: bytes, field: str, max_s: float) -> AudioFeatures:
        duration_s = self.analyser.declared_duration_s(audio)
        if duration_s is not None and duration_s > max_s:
            raise ResourceExhausted(f"{field}: audio is {duration_s:.1f} s long; the limit "
                                    f"is {max_s:g} s")
        started = time.perf_counter()
        try:
            features = self.analyser.features(audio)
        except AudioError as error:
            raise InvalidArgument(field, str(error)) from error
        metrics.FEATURE_SECONDS.observe(time.perf_counter() - started)
        return features

    async def ingest(self, metadata: TrackMetadata, audio: bytes | None) -> tuple[Track, bool]:
        """Analyses the audio (if any), embeds the metadata and writes the track whole.

        Returns the stored track and whether it replaced one with the same id.
        """
        check_metadata(metadata)
        started = time.perf_counter()
        features = None
        vector = None
        if audio is not None:
            self.check_upload_size(len(audio))
            features = await self._compute_on_pool(
                self._features, audio, "audio", self.limits.max_audio_duration_s)
            vector = audio_vector(features)
        track = Track(metadata, features, time.time())
        text_vector = (await self._compute_on_pool(
            self.encoder.encode, [track_text(metadata)]))[0]
        replaced = await self._in_store(self.store.upsert, track, vector, text_vector)
        self._writes += 1
        metrics.INGESTED.labels("audio" if features else "metadata").inc()
        if not replaced:
            metrics.CATALOG_TRACKS.inc()
        metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
        return track, replaced

    # -- reads -------------------------------------------------------------------------

    async def get(self, track_id: str) -> Track:
        """The track with this id; NotFound when there is none."""
        check_id("track_id", track_id)
        found = await self._in_store(self.store.get, [track_id])
        if not found:
            raise NotFound(f"track '{track_id}' is not in the catalog")
        return found[0].track

    async def batch_get(self, track_ids: list[str]) -> tuple[list[Track], list[str]]:
        """The tracks that exist, in the order asked, and the ids that are missing."""
        if len(track_ids) > 1000:
            raise InvalidArgument("track_ids", f"at most 1000 ids, got {len(track_ids)}")
        for i, track_id in enumerate(track_ids):
            check_id(f"track_ids[{i}]", track_id)
        found = await self._in_store(self.store.get, track_ids)
        present = {s.track.metadata.track_id for s in found}
        return [s.track for s in found], [t for t in track_ids if t not in present]

    async def delete(self, track_id: str) -> None:
        """Removes the track; NotFound when there is none."""
        check_id("track_id", track_id)
        if not await self._in_store(self.store.delete, track_id):
            raise NotFound(f"track '{track_id}' is not in the catalog")
        self._writes += 1
        metrics.CATALOG_TRACKS.dec()

    async def list_tracks(self, filter: TrackFilter, limit: int,
                          cursor: str | None) -> tuple[list[Track], str | None]:
        """A page of matching tracks in storage order, and the next page's cursor."""
        return await self._in_store(self.store.scroll, filter, limit, cursor)

    async def list_with_vectors(self, filter: TrackFilter, limit: int, cursor: str | None
                                ) -> tuple[list[StoredTrack], str | None]:
        """`list_tracks` with each track's stored vectors."""
        tracks, after = await self._in_store(self.store.scroll, filter, limit, cursor)
        stored = await self._in_store(self.store.get, [t.metadata.track_id for t in tracks],
                                      True)
        return stored, after

    @property
    def revision(self) -> str:
        """Changes with every write through this process and when it restarts."""
        return f"{self._started}-{self._writes}"

    async def stats(self) -> tuple[int, int]:
        """How many tracks the catalog holds, and how many of them have audio."""
        total = await self._in_store(self.store.count, TrackFilter())
        with_audio = await self._in_store(self.store.count, TrackFilter(has_audio=True))
        metrics.CATALOG_TRACKS.set(total)  # an exact count anyway: correct any drift
        return total, with_audio

    # -- search ------------------------------------------------------------------------

    async def search_text(self, text: str, filter: TrackFilter, limit: int, offset: int,
                          exclude: list[str]) -> SearchPage:
        """Tracks whose metadata embedding is nearest the text's."""
        if not text.strip():
            raise InvalidArgument("text", "is empty; give some words to search for")
        vector = (await self._compute_on_pool(self.encoder.encode, [text]))[0]
        scored = await self._timed("text", self.store.query, TEXT_VECTOR, vector, filter,
                                   limit + 1, offset, exclude)
        hits = [Hit(s.stored.track, s.score) for s in scored]
        return _page(hits, limit, offset, {})

    async def search_like_track(self, track_id: str, filter: TrackFilter,
                                weights: dict[str, float], limit: int, offset: int,
                                exclude: list[str]) -> SearchPage:
        """Tracks that sound like a catalog track, by resolved feature-group weights."""
        check_id("like_track_id", track_id)
        found = await self._in_store(self.store.get, [track_id], True)
        if not found:
            raise NotFound(f"like_track_id: track '{track_id}' is not in the catalog")
        if found[0].audio_vector is None:
            raise InvalidArgument("like_track_id", f"track '{track_id}' has no audio to "
                                                   "compare with; ingest its audio first")
        return await self._audio_search("like_track", found[0].audio_vector, filter, weights,
                                        limit, offset, [*exclude, track_id])

    async def search_like_audio(self, clip: bytes, filter: TrackFilter,
                                weights: dict[str, float], limit: int, offset: int,
                                exclude: list[str]) -> SearchPage:
        """Tracks that sound like an uploaded clip, by resolved feature-group weights."""
        if not clip:
            raise InvalidArgument("like_audio.data", "is empty; upload a 5-60 s clip")
        self.check_upload_size(len(clip))
        features = await self._compute_on_pool(self._features, clip, "like_audio.data",
                                               self.limits.max_clip_s)
        if features.duration_s < self.limits.min_clip_s:
            raise InvalidArgument("like_audio.data", f"clip is {features.duration_s:.1f} s "
                                  f"long; send {self.limits.min_clip_s:g} to "
                                  f"{self.limits.max_clip_s:g} s")
        return await self._audio_search("like_audio", audio_vector(features), filter, weights,
                                        limit, offset, exclude)

    async def search_examples(self, positive: list[str], negative: list[str],
                              space: ExampleSpace, filter: TrackFilter,
                              weights: dict[str, float], limit: int, offset: int,
                              exclude: list[str]) -> SearchPage:
        """Tracks like the positives and unlike the negatives, in the audio space (the
        weighted feature blocks) or the text space (metadata embeddings; weights unused)."""
        if not positive:
            raise InvalidArgument("examples.positive_track_ids", "give at least one track")
        if len(positive) + len(negative) > MAX_EXAMPLES:
            raise InvalidArgument("examples", f"at most {MAX_EXAMPLES} example tracks in all "
                                              f"(positive and negative), got "
                                              f"{len(positive) + len(negative)}")
        for field, ids in (("examples.positive_track_ids", positive),
                           ("examples.negative_track_ids", negative)):
            for i, track_id in enumerate(ids):
                check_id(f"{field}[{i}]", track_id)
        both = set(positive) & set(negative)
        if both:
            i = next(i for i, track_id in enumerate(negative) if track_id in both)
            raise InvalidArgument(f"examples.negative_track_ids[{i}]", (
                f"track '{negative[i]}' is also a positive example; a track can be one or "
                "the other"))
        found = await self._in_store(self.store.get, [*positive, *negative],
                                     space is not ExampleSpace.TEXT)
        stored = {s.track.metadata.track_id: s for s in found}
        _check_examples_exist(positive, negative, stored)
        if space is ExampleSpace.AUTO:
            with_audio = all(s.audio_vector is not None for s in stored.values())
            space = ExampleSpace.AUDIO if with_audio else ExampleSpace.TEXT
        if space is ExampleSpace.TEXT:
            scored = await self._timed("examples_text", self.store.recommend, TEXT_VECTOR,
                                       positive, negative, filter, limit + 1, offset, exclude)
            return _page([Hit(s.stored.track, s.score) for s in scored], limit, offset, {})
        pos = _example_vectors("examples.positive_track_ids", positive, stored)
        neg = _example_vectors("examples.negative_track_ids", negative, stored)
        return await self._audio_search("examples", example_blocks(pos, neg), filter,
                                        weights, limit, offset, [*exclude, *positive, *negative])

    async def _audio_search(self, mode: str, blocks: np.ndarray, filter: TrackFilter,
                            weights: dict[str, float], limit: int, offset: int,
                            exclude: list[str]) -> SearchPage:
        query = weighted_query(blocks, weights)
        scored = await self._timed(mode, self.store.query, AUDIO_VECTOR, query, filter,
                                   limit + 1, offset, exclude)
        hits = [Hit(s.stored.track, s.score, contributions(query, s.stored.audio_vector))
                for s in scored if s.stored.audio_vector is not None]
        return _page(hits, limit, offset, weights)

    async def search_metadata(self, filter: TrackFilter, limit: int,
                              cursor: str | None) -> tuple[list[Track], str | None]:
        """Filter-only search: a page in storage order, and the next page's cursor."""
        return await self._timed("metadata", self.store.scroll, filter, limit, cursor)

    async def _timed(self, mode: str, fn: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        result = await self._in_store(fn, *args)
        metrics.QUERY_SECONDS.labels(mode).observe(time.perf_counter() - started)
        return result

    async def warmup(self) -> None:
        """Compiles librosa's numba kernels and loads the encoder before SERVING."""
        clip = self.analyser.warmup_clip()
        await self._compute_on_pool(self.analyser.features, clip)
        await self._compute_on_pool(self.encoder.encode, ["warm up"])
        metrics.CATALOG_TRACKS.set(await self._in_store(self.store.count, TrackFilter()))

    def close(self) -> None:
        """Waits for running work, then closes the store on its own thread."""
        self._compute.shutdown(wait=True)
        self._store_thread.submit(self.store.close).result()
        self._store_thread.shutdown(wait=True)


def _page(hits: list[Hit], limit: int, offset: int, weights: dict[str, float]) -> SearchPage:
    more = len(hits) > limit
    return SearchPage(hits[:limit], offset + limit if more else None, weights)


def _check_examples_exist(positive: list[str], negative: list[str],
                          stored: dict[str, StoredTrack]) -> None:
    for field, ids in (("examples.positive_track_ids", positive),
                       ("examples.negative_track_ids", negative)):
        for track_id in ids:
            if track_id not in stored:
                raise NotFound(f"{field}: track '{track_id}' is not in the catalog")


def _example_vectors(field: str, ids: list[str],
                     stored: dict[str, StoredTrack]) -> list[np.ndarray]:
    vectors = []
    for track_id in ids:
        vector = stored[track_id].audio_vector
        if vector is None:
            raise InvalidArgument(field, f"track '{track_id}' has no audio; compare in the "
                                         "text space (examples.space) instead")
        vectors.append(vector)
    return vectors
