"""Model selection for `make eval-recs` on a validation split, never the test split.

The validation split is carved out of the training data with the same per-user hold-out
the test split uses. Candidates are scored by the service's own code in this process: the
same fit (services.recommend.fitting), the same Recommender and blend, the same catalogue
copy (the content signal, from the running retrieval service), with the model in the
in-memory store (it answers what the Qdrant store answers; the store contract says so).

Two stages, to keep the grid affordable on two cores:
1. the collaborative model: hyperparameters, the ensemble's member weights, then its
   popularity penalty, then the item-kNN member's similarity (cosine or RP3beta, each
   with the penalties again: RP3beta's beta damps hits itself), on collaborative-only
   lists;
2. R(x)'s weights (content and popularity next to COLLABORATIVE) with that model.
The pick is the best nDCG@10 among candidates whose catalogue coverage is at least
MIN_COVERAGE (the best nDCG@10 overall when none reaches it).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits

from services.recommend import fitting
from services.recommend.catalog import RetrievalCatalog
from services.recommend.content import ContentRefresher
from services.recommend.event_log import EventLog
from services.recommend.events import Engagement, Event, EventKind
from services.recommend.memory_event_store import MemoryEventStore
from services.recommend.memory_model_store import MemoryModelStore
from services.recommend.model import ALS, EASE, ITEMKNN, PublishedModel
from services.recommend.offline_eval import Split, evaluate
from services.recommend.recommender import DEFAULT_WEIGHTS, Recommender, RecommendQuery
from tools.lastfm import dataset as lastfm

MIN_COVERAGE = 0.10
BASE = fitting.Hyperparameters(als_factors=64, als_regularization=0.05, als_alpha=1.0,
                               als_iterations=15, ease_l2=200.0, knn_shrink=10.0)
# Stage 1: one change from BASE at a time, then ALS's confidence and regularisation
# together (they trade off: a larger alpha wants a stronger prior), then the member weights
# on the best of each.
PARAMS = [BASE, dataclasses.replace(BASE, als_factors=128),
          dataclasses.replace(BASE, als_alpha=2.0), dataclasses.replace(BASE, als_alpha=4.0),
          dataclasses.replace(BASE, als_regularization=20.0),
          dataclasses.replace(BASE, ease_l2=500.0), dataclasses.replace(BASE, knn_shrink=50.0),
          dataclasses.replace(BASE, als_alpha=4.0, als_regularization=5.0),
          dataclasses.replace(BASE, als_alpha=4.0, als_regularization=20.0)]
MEMBER_WEIGHTS = [{ALS: 0.4, EASE: 0.4, ITEMKNN: 0.2}, {ALS: 0.6, EASE: 0.3, ITEMKNN: 0.1},
                  {ALS: 0.3, EASE: 0.6, ITEMKNN: 0.1}, {ALS: 0.5, EASE: 0.5, ITEMKNN: 0.0}]
# The penalty that damps hits' collaborative scores (0, BASE's, is the members' stage).
PENALTIES = [0.1, 0.2, 0.25, 0.3, 0.5]
# The item-kNN member's similarity next to cosine: RP3beta with these betas (alpha 1).
RP3_BETAS = [0.2, 0.3, 0.4]
# Stage 2: R(x)'s weights next to collaborative 0.8 (seeds and targets stay as they are:
# Last.fm requests carry neither).
BLENDS = [{"content": c, "popularity": p} for c in (0.0, 0.1, 0.2, 0.4) for p in (0.0, 0.02)]
# Stage 1's lists: the collaborative signal alone.
COLLABORATIVE = {**dict.fromkeys(DEFAULT_WEIGHTS, 0.0), "collaborative": 1.0}


@dataclass(frozen=True)
class Candidate:
    """One configuration and its validation scores."""

    params: fitting.Hyperparameters
    members: dict[str, float]
    weights: dict[str, float]
    scores: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        """The candidate as selected.json holds it."""
        return {"hyperparameters": dataclasses.asdict(self.params), "members": self.members,
                "weights": self.weights, "validation": self.scores}


def pick(candidates: list[Candidate]) -> Candidate:
    """The best nDCG@10 among those with enough coverage (or among all)."""
    covered = [c for c in candidates if c.scores["coverage"] >= MIN_COVERAGE]
    return max(covered or candidates, key=lambda c: c.scores["nDCG@10"])


class Validation:
    """Scores configurations on one validation split with the service's code."""

    def __init__(self, split: Split, catalog: RetrievalCatalog, content: ContentRefresher,
                 catalog_size: int) -> None:
        self.split = split
        self.catalog = catalog
        self.content = content
        self.catalog_size = catalog_size
        self.users = sorted(split.test, key=int)
        self.engagements = training_engagements(split)
        store = MemoryEventStore()
        store.add([Event(f"v-{e.user_id}-{e.track_id}", lastfm.user_key(e.user_id),
                         lastfm.track_key(e.track_id), EventKind.PLAY, 0.0,
                         count=int(e.value)) for e in self.engagements])
        self.events = EventLog(store, catalog, 300.0)

    def fitting_engagements(self) -> list[Engagement]:
        """The split's training engagements as the service fits them."""
        return _service_ids(self.engagements)

    async def score(self, model: PublishedModel, weights: dict[str, float]
                    ) -> dict[str, float]:
        """Validation metrics of the lists the service would give with this model."""
        models = MemoryModelStore()
        await models.publish(model)
        recommender = Recommender(self.events, self.catalog, models, self.content)
        total = sum(weights.values())
        normalised = {k: v / total for k, v in weights.items()}
        ranked = {}
        with threadpool_limits(1, "blas"):  # as the service runs (services/recommend/app.py)
            for user in self.users:
                result = await recommender.recommend(RecommendQuery(
                    lastfm.user_key(user), 10, normalised))
                ranked[user] = [lastfm.artist_of(i.track.track_id) for i in result.items]
        return evaluate(ranked, self.split.test, self.catalog_size).row()

    async def select(self, log: Any = print) -> tuple[Candidate, list[Candidate]]:
        """Stage 1 then stage 2; the pick and every candidate tried."""
        tried: list[Candidate] = []
        fits = {}
        for params in PARAMS:
            started = time.perf_counter()
            fits[params] = fitting.fit(self.fitting_engagements(), "ensemble", "val", params,
                                       MEMBER_WEIGHTS[0])
            candidate = Candidate(params, MEMBER_WEIGHTS[0], COLLABORATIVE,
                                  await self.score(fits[params], COLLABORATIVE))
            tried.append(candidate)
            log(f"  {_describe(candidate)} ({time.perf_counter() - started:.0f} s)")
        best_params = pick(tried).params
        for members in MEMBER_WEIGHTS[1:]:
            candidate = Candidate(best_params, members, COLLABORATIVE, await self.score(
                _variant(fits, best_params, members), COLLABORATIVE))
            tried.append(candidate)
            log(f"  {_describe(candidate)}")
        best = pick(tried)
        tried += await self._penalised(fits, best.params, best.members, log)
        best = pick(tried)
        cosine = fits[dataclasses.replace(best.params, popularity_penalty=BASE.popularity_penalty)]
        for beta in RP3_BETAS:
            fitted = dataclasses.replace(best.params, popularity_penalty=BASE.popularity_penalty,
                                         knn_similarity="rp3beta", rp3_alpha=1.0, rp3_beta=beta)
            fits[fitted] = knn_swapped(cosine, self.fitting_engagements(), fitted)
            tried += await self._penalised(fits, fitted, best.members, log)
        best = pick(tried)
        model = _variant(fits, best.params, best.members)
        blended = []
        for blend in BLENDS:
            weights = {**DEFAULT_WEIGHTS, "collaborative": 0.8, **blend}
            candidate = Candidate(best.params, best.members, weights,
                                  await self.score(model, weights))
            blended.append(candidate)
            log(f"  {_describe(candidate)}")
        return pick(blended), tried + blended

    async def _penalised(self, fits: dict[fitting.Hyperparameters, PublishedModel],
                         params: fitting.Hyperparameters, members: dict[str, float],
                         log: Any) -> list[Candidate]:
        """The fit of `params` scored with each of PENALTIES (collaborative-only lists)."""
        out = []
        for penalty in PENALTIES:
            penalised = dataclasses.replace(params, popularity_penalty=penalty)
            candidate = Candidate(penalised, members, COLLABORATIVE, await self.score(
                _variant(fits, penalised, members), COLLABORATIVE))
            out.append(candidate)
            log(f"  {_describe(candidate)}")
        return out


def knn_swapped(model: PublishedModel, engagements: list[Engagement],
                params: fitting.Hyperparameters) -> PublishedModel:
    """`model` (fitted on `engagements`) with its item-kNN rows fitted again with
    `params`' similarity: the other members do not depend on it, so they are kept."""
    knn = fitting.fit(engagements, "itemknn", model.manifest.version, params)
    return dataclasses.replace(model, neighbours={**model.neighbours,
                                                  ITEMKNN: knn.neighbours[ITEMKNN]})


def _variant(fits: dict[fitting.Hyperparameters, PublishedModel],
             params: fitting.Hyperparameters, members: dict[str, float]) -> PublishedModel:
    """The model fitted with these parameters, with other member weights and penalty:
    both only steer serving, so the fit is the one without the penalty."""
    model = fits[dataclasses.replace(params, popularity_penalty=BASE.popularity_penalty)]
    return dataclasses.replace(model, manifest=dataclasses.replace(
        model.manifest, members=members, popularity_penalty=params.popularity_penalty))


def training_engagements(split: Split) -> list[Engagement]:
    """The training plays as the service's training sees them (artist ids as items)."""
    return [Engagement(u, a, plays, False, 0.0)
            for u, by_artist in split.train.items() for a, plays in by_artist.items()]


def _service_ids(engagements: list[Engagement]) -> list[Engagement]:
    """The engagements as the service stores them (user keys, track ids)."""
    return [dataclasses.replace(e, user_id=lastfm.user_key(e.user_id),
                                track_id=lastfm.track_key(e.track_id)) for e in engagements]


def _describe(c: Candidate) -> str:
    p = c.params
    return (f"als k={p.als_factors} alpha={p.als_alpha} reg={p.als_regularization:g} "
            f"ease l2={p.ease_l2:g} knn {_similarity(p)} members={c.members} "
            f"penalty={p.popularity_penalty:g} content="
            f"{c.weights['content']} popularity={c.weights['popularity']}: nDCG@10 "
            f"{c.scores['nDCG@10']:.4f} coverage {c.scores['coverage']:.4f}")


def _similarity(p: fitting.Hyperparameters) -> str:
    if p.knn_similarity == "rp3beta":
        return f"rp3beta alpha={p.rp3_alpha:g} beta={p.rp3_beta:g}"
    return f"cosine shrink={p.knn_shrink:g}"
