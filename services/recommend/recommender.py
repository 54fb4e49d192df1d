"""Personalised lists: R(x) = sum_i w_i r_i(x) over the signal sources, with reasons.

Sources, each scored in [0, 1] (its own best candidate scores 1):
- collaborative: the published model (ALS + EASE + item-kNN) on the user's engagements;
- content: tracks like what the user engaged with positively and unlike what they
  disliked or skipped, by the retrieval service's example search (no retraining needed);
- seeds: the tracks, artists, tags or text the caller gave;
- popularity: listeners with positive engagement, from the published model;
- targets: closeness to the caller's target_ audio values.
Excluded: disliked tracks always, heard tracks unless asked. A cap per artist keeps the
list varied.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Hashable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from cadenza.kit.errors import FailedPrecondition, NotFound
from services.recommend import metrics, selected
from services.recommend.blend import Item, Signal, blend
from services.recommend.catalog import CandidateFilter, Catalog, CatalogTrack, Scored
from services.recommend.collaborative import collaborative, fold_in
from services.recommend.content import ContentRefresher
from services.recommend.event_log import EventLog
from services.recommend.events import Engagement
from services.recommend.list_cache import ListCache, history_key
from services.recommend.model import ModelStore
from services.recommend.seeds import Seeds, seed_candidates

# Defaults of R(x)'s weights (README, "Recommendations"): the collaborative, content and
# popularity weights are chosen by `make eval-recs` on its validation split (selected.json).
# Sources with nothing to say for a request (no seeds, no targets) score 0 and do not
# change the order of the rest.
DEFAULT_WEIGHTS = {"collaborative": 0.8, "content": 0.1, "seeds": 0.3, "popularity": 0.02,
                   "targets": 0.3, **selected.load().get("weights", {})}
MAX_LIMIT = 100
CONTENT_POSITIVES, CONTENT_NEGATIVES = 50, 20


@dataclass(frozen=True)
class RecommendQuery:
    """A Recommend request in domain terms."""

    user_id: str
    limit: int
    weights: dict[str, float]  # after defaults, normalised
    seeds: Seeds = field(default_factory=Seeds)
    where: CandidateFilter = field(default_factory=CandidateFilter)
    targets: dict[str, float] = field(default_factory=dict)
    max_per_artist: int = 2
    include_heard: bool = False


@dataclass(frozen=True)
class RecommendResult:
    """A list of recommendations and what produced it."""

    items: list[Item]
    weights: dict[str, float]
    model_version: str
    cold_start: bool


@dataclass(frozen=True)
class Kept:
    """A cached list and the limit it was computed for. The blend walks the candidates
    best first and stops at the limit, so the list for a smaller limit is its prefix.

    Held as tuples of plain values (`of`), not Items: CPython's collector stops tracking
    such tuples, and a cache of 20k lists as objects (25 a list) made every full
    collection walk half a million of them, stalling calls for hundreds of ms.
    """

    tracks: tuple[CatalogTrack, ...]  # one tuple a list, of the catalogue's own objects
    scores: tuple[float, ...]
    reasons: tuple[str, ...]
    shares: tuple[tuple[str | float, ...], ...]  # per item: source, share, source, share...
    weights: tuple[str | float, ...]  # source, weight, ...
    model_version: str
    cold_start: bool
    limit: int

    @classmethod
    def of(cls, result: RecommendResult, limit: int) -> Kept:
        """The list packed for the cache (tuples at most two deep: the collector stops
        tracking a level each time it looks)."""
        items = result.items
        return cls(tuple(i.track for i in items), tuple(i.score for i in items),
                   tuple(i.reason for i in items),
                   tuple(_flat(i.contributions.items()) for i in items),
                   _flat(result.weights.items()),
                   result.model_version, result.cold_start, limit)

    def serves(self, limit: int) -> bool:
        """Whether the list for `limit` is (a prefix of) this one."""
        return limit <= self.limit or len(self.tracks) < self.limit

    def first(self, limit: int) -> RecommendResult:
        """The list for `limit` (the caller's own objects)."""
        return RecommendResult(
            [Item(track, score, _unflat(shares), reason) for track, score, shares, reason
             in zip(self.tracks[:limit], self.scores, self.shares, self.reasons,
                    strict=False)],  # the first, cut to the limit, ends it
            _unflat(self.weights), self.model_version, self.cold_start)


def _flat(pairs: Iterable[tuple[str, float]]) -> tuple[str | float, ...]:
    return tuple(itertools.chain.from_iterable(pairs))


def _unflat(flat: tuple[str | float, ...]) -> dict[str, float]:
    return dict(zip(flat[::2], flat[1::2], strict=True))  # type: ignore[arg-type]


class Recommender:
    """Blends the signal sources into lists: personal, similar tracks, similar users."""

    def __init__(self, events: EventLog, catalog: Catalog, models: ModelStore,
                 content: ContentRefresher | None = None, cached_lists: int = 0) -> None:
        self.events = events
        self.catalog = catalog
        self.models = models
        # The catalogue's vectors in memory for the content signal; retrieval's example
        # search per request while there is no copy yet (or without one).
        self.content = content
        self.lists: ListCache[Kept] = ListCache(cached_lists)
        self.default_weights = dict(DEFAULT_WEIGHTS)
        # Users who asked for a list lately, the most recent last (as many as lists are
        # kept): whose lists are worth computing again ahead of their next call.
        self._callers: OrderedDict[str, None] = OrderedDict()
        self._computing: dict[Hashable, asyncio.Future[None]] = {}  # cache keys

    async def recommend(self, q: RecommendQuery, ahead: bool = False) -> RecommendResult:
        """The user's list: every source with a weight, blended, filtered and capped.
        `ahead`: computed for the cache before the user asks (warm.py), so the call is
        left out of the cache's hit ratio and the cold-start count."""
        if not ahead:
            self._called(q.user_id)
        history = await self.events.engagements(q.user_id)
        cold = not any(e.value > 0 and not e.disliked for e in history)
        if cold and not ahead:
            metrics.COLD_START.inc()
        state = self.list_state()
        if state is None:
            return await self._compute(q, history)
        key = (_query_key(q), history_key(history), *state)

        def usable(kept: Kept) -> bool:
            # Ahead of a call, any list kept for the key will do: the user's own call
            # already computed the list they wanted.
            return ahead or kept.serves(q.limit)

        kept = self.lists.get(key, usable, count=not ahead)
        if kept is None and key in self._computing:
            # The same list is being computed (warmed ahead, or the same call twice at
            # once): wait for it rather than compute it twice.
            await asyncio.wait([self._computing[key]])
            kept = self.lists.get(key, usable, count=False)
        if kept is not None:
            return kept.first(q.limit)
        mine = None
        if key not in self._computing:
            mine = self._computing[key] = asyncio.get_running_loop().create_future()
        try:
            result = await self._compute(q, history)
            self.lists.put(key, Kept.of(result, q.limit))
            return result
        finally:
            if mine is not None:  # also when cancelled: whoever waits computes it then
                del self._computing[key]
                mine.set_result(None)

    async def _compute(self, q: RecommendQuery, history: list[Engagement]) -> RecommendResult:
        """The list, computed from the sources."""
        model = self.models.serving
        disliked = {e.track_id for e in history if e.disliked or e.value < 0}
        exclude = disliked | (set() if q.include_heard else {e.track_id for e in history})
        positives = sorted((e for e in history if e.value > 0 and not e.disliked),
                           key=lambda e: -e.value)
        cold = not positives
        if model is None and positives and q.weights["collaborative"] > 0:
            # Nothing trained yet: the catalogue's sound and tags stand in for the
            # listeners' signal (validation may have given content no weight of its own).
            q = replace(q, weights={**q.weights, "collaborative": 0.0,
                                    "content": q.weights["content"] + q.weights["collaborative"]})
        titles = await self._titles(positives[:200])
        jobs: dict[str, Awaitable[Signal]] = {}
        if q.weights["collaborative"] > 0 and model is not None and positives:
            jobs["collaborative"] = self._timed("collaborative", self._collaborative(
                history, exclude, titles))
        if q.weights["content"] > 0 and positives:
            jobs["content"] = self._timed("content", self._content(
                positives, disliked, q.where, titles))
        if q.weights["seeds"] > 0 and not q.seeds.empty():
            jobs["seeds"] = self._timed("seeds", self._seeds(q.seeds, q.where))
        if q.weights["popularity"] > 0 and model is not None:
            jobs["popularity"] = self._timed("popularity", self._popular(exclude))
        elif cold and not jobs and not q.targets and model is not None:
            # A listener with nothing else to go on gets the popular tracks, whatever the
            # popularity weight (validation chose 0 for listeners with a history).
            jobs["popularity"] = self._timed("popularity", self._popular(exclude))
            q = replace(q, weights={**dict.fromkeys(q.weights, 0.0), "popularity": 1.0})
        if q.targets or (cold and not jobs):
            # Targets (or an empty start) also draw candidates straight from the catalog.
            jobs["targets"] = self._timed("targets", self._matching(q.where))
        signals = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
        items = await self._blend(signals, q, exclude)
        return RecommendResult(items, q.weights, model.manifest.version if model else "",
                               cold)

    def asked_lately(self, user_id: str) -> bool:
        """Whether the user is among the last callers (as many as lists are kept)."""
        return user_id in self._callers

    def _called(self, user_id: str) -> None:
        self._callers[user_id] = None
        self._callers.move_to_end(user_id)
        while len(self._callers) > self.lists.size:
            self._callers.popitem(last=False)

    def list_state(self) -> tuple[str, str] | None:
        """What every cached list depends on besides the request and the user's history:
        (serving model version, catalogue revision); None while lists are not cached."""
        index = None if self.content is None else self.content.index
        if index is None or self.lists.size <= 0:
            return None
        model = self.models.serving
        return (model.manifest.version if model else "", index.revision)

    async def similar_tracks(self, track_id: str, limit: int) -> list[Item]:
        """Tracks like this one: its listeners' other tracks and its sound."""
        found = await self.catalog.tracks([track_id])
        if track_id not in found:
            raise NotFound(f"track_id: track '{track_id}' is not in the catalog")
        title = found[track_id].title or track_id
        listened = [Engagement("", track_id, 1.0, False, time.time())]
        weights = {"collaborative": 0.6, "content": 0.4}
        signals: dict[str, Signal] = {}
        if self.models.serving is not None:
            neighbours = await self._collaborative(listened, {track_id}, {})
            signals["collaborative"] = Signal(neighbours.ids, neighbours.scores,
                                              f"listeners of {title} also play this")
        content = await self._like([track_id], [], CandidateFilter())
        signals["content"] = Signal.of(_normalised({
            s.track.track_id: (s.score, f"similar to {title}") for s in content}))
        query = RecommendQuery("", limit, {**dict.fromkeys(DEFAULT_WEIGHTS, 0.0), **weights},
                               max_per_artist=0)
        return await self._blend(signals, query, {track_id})

    async def similar_users(self, user_id: str, limit: int) -> list[tuple[str, float]]:
        """Users whose ALS factors are nearest the user's (trained or folded in)."""
        model = self.models.serving
        if model is None or model.manifest.als_gram is None:
            raise FailedPrecondition("no collaborative model with user factors yet; run "
                                     "TrainModel (algorithm ensemble or als) first")
        vector = await self.models.user_factor(model, user_id)
        if vector is None:
            history = await self.events.engagements(user_id)
            known = [e for e in history if e.track_id in model.index]
            vector = await fold_in(self.models, model, known)
        if vector is None:
            raise NotFound(f"user_id: user '{user_id}' has no engagements with tracks the "
                           "model knows; record some events (and retrain) first")
        return await self.models.nearest_users(model, vector, limit, exclude=user_id)

    # -- sources ---------------------------------------------------------------------

    async def _collaborative(self, history: list[Engagement], exclude: set[str],
                             titles: dict[str, str]) -> Signal:
        model = self.models.serving
        if model is None:
            return Signal([], np.zeros(0), "")
        found = await collaborative(self.models, model, history, exclude)
        track_ids = model.manifest.track_ids

        def reason(k: int) -> str:
            if found.because[k] < 0:
                return "popular with listeners like you"
            because = track_ids[found.because[k]]
            return f"because you like {titles.get(because, because)}"

        assert model.track_array is not None  # set by ServingModel.of
        return Signal(model.track_array[found.items].tolist(), found.scores, reason)

    async def _content(self, positives: list[Engagement], disliked: set[str],
                       where: CandidateFilter, titles: dict[str, str]) -> Signal:
        liked = [e.track_id for e in positives[:CONTENT_POSITIVES]]
        unliked = sorted(disliked)[:CONTENT_NEGATIVES]
        found = await self._like(liked, unliked, where)
        favourite = titles.get(liked[0], liked[0])
        return Signal.of(_normalised({s.track.track_id: (
            s.score, f"in the style of {favourite} and what else you like") for s in found}))

    async def _seeds(self, seeds: Seeds, where: CandidateFilter) -> Signal:
        return Signal.of(await seed_candidates(self.catalog, seeds, where))

    async def _like(self, positive: list[str], negative: list[str],
                    where: CandidateFilter) -> list[Scored]:
        """The 100 tracks most like the examples: from the copy in memory when it has
        them all, else by retrieval's example search."""
        index = None if self.content is None else self.content.index
        found = None if index is None else index.like(positive, negative, where, 100)
        if found is None:
            found = await self.catalog.like_examples(positive, negative, where, 100)
        return found

    async def _popular(self, exclude: set[str]) -> Signal:
        model = self.models.serving
        if model is None:
            return Signal([], np.zeros(0), "")
        popularity, ids = model.manifest.popularity, model.manifest.track_ids
        top = list(itertools.islice((i for i in model.by_popularity if ids[i] not in exclude),
                                    200))
        best = max((popularity[i] for i in top), default=0) or 1
        return Signal([ids[i] for i in top],
                      np.array([popularity[i] / best for i in top], dtype=np.float64),
                      "popular with listeners")

    async def _matching(self, where: CandidateFilter) -> Signal:
        found = await self.catalog.matching(where, 100)
        return Signal([t.track_id for t in found], np.zeros(len(found)), "from the catalog")

    async def _timed(self, source: str, job: Awaitable[Signal]) -> Signal:
        started = time.perf_counter()
        result = await job
        metrics.SOURCE_SECONDS.labels(source).observe(time.perf_counter() - started)
        return result

    async def _titles(self, engagements: list[Engagement]) -> dict[str, str]:
        tracks = await self.catalog.tracks([e.track_id for e in engagements])
        return {t: track.title or t for t, track in tracks.items()}

    async def _blend(self, signals: dict[str, Signal], q: RecommendQuery,
                     exclude: set[str]) -> list[Item]:
        return await blend(signals, q.weights, q.where, q.targets, exclude, q.max_per_artist,
                           q.limit, self.catalog.tracks)


def _query_key(q: RecommendQuery) -> Hashable:
    """The request as the cache sees it: everything but the limit (see `Kept`)."""
    # Plain tuples, not the Seeds and CandidateFilter objects: the collector stops
    # tracking them (see `Kept`).
    seeds, where = q.seeds, q.where
    return (q.user_id, _flat(sorted(q.weights.items())), seeds.track_ids,
            seeds.artists, seeds.tags, seeds.text, where.artists, where.tags,
            where.tempo_bpm.min, where.tempo_bpm.max, where.loudness_db.min,
            where.loudness_db.max, where.brightness_hz.min, where.brightness_hz.max,
            where.duration_s.min, where.duration_s.max, _flat(sorted(q.targets.items())),
            q.max_per_artist, q.include_heard)


def _normalised(scored: dict[str, tuple[float, str]]) -> dict[str, tuple[float, str]]:
    best = max((s for s, _ in scored.values()), default=0.0)
    if best <= 0:
        return {}
    return {t: (max(s, 0.0) / best, r) for t, (s, r) in scored.items()}
