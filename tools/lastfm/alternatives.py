"""Alternatives to the selected recommender, scored on the validation split only.

`make eval-recs` selects within one family (ALS + EASE + item-kNN by cosine or RP3beta,
each member's top 300 divided by its best, summed with weights, damped by popularity).
This asks whether something outside that family would do better, without looking at the
test split: the validation split of seed 2011 (seed 3011 carved from its training data),
collaborative-only lists (the default blend's content weight is 0), the selected
hyperparameters.

The members' raw scores come from the service's own code (services.recommend.
collaborative on the in-memory store); each alternative changes one thing:
- EASE's stored rows (entries kept per row, negative weights kept);
- EDLAE (Steck 2020: EASE with an L2 that grows with each item's popularity);
- user-kNN, or the listeners' friends (user_friends.dat), as a fourth member;
- BM25-weighted ALS in place of ALS;
- member scores divided by their 10th best instead of the best;
- a gradient-boosted re-ranker of the top 100 (2-fold over validation users).

`python -m tools.lastfm.alternatives` (about 4 minutes on 2 cores); README, "Evaluation".
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from services.recommend import algorithms, fitting
from services.recommend.collaborative import _als_scores, _neighbour_evidence
from services.recommend.events import Engagement
from services.recommend.memory_model_store import MemoryModelStore
from services.recommend.model import PublishedModel
from services.recommend.offline_eval import Split, evaluate, split_per_user
from tools.lastfm import dataset as lastfm
from tools.lastfm.eval_recs import VALIDATION_SEED_OFFSET
from tools.lastfm.selection import _service_ids, training_engagements

SEED = 2011
CUT = 300  # candidates per member, as services/recommend/collaborative.py
MEMBERS = ("als", "ease", "itemknn")


@dataclasses.dataclass
class Bench:
    """The validation users' member scores and what scoring a list needs."""

    split: Split
    users: list[str]
    matrix: fitting.Matrix
    rows: np.ndarray  # each user's row in the matrix
    raw: dict[str, np.ndarray]  # member -> users x items
    catalog_size: int
    weights: dict[str, float]
    penalty: float

    @property
    def popularity(self) -> np.ndarray:
        """Listeners per item in the validation training data."""
        return np.asarray(self.matrix.binary.sum(axis=0)).ravel()

    def heard(self, j: int) -> np.ndarray:
        """User j's training items (left out of their list)."""
        return np.asarray(self.matrix.binary[self.rows[j]].indices)

    def cut(self, scores: np.ndarray, norm: int = 1) -> np.ndarray:
        """Each user's top CUT positive unheard scores divided by their `norm`-th best."""
        out = np.zeros_like(scores)
        for j in range(len(scores)):
            x = scores[j].copy()
            x[self.heard(j)] = 0
            top = np.argpartition(-x, CUT)[:CUT]
            top = top[x[top] > 0]
            if len(top):
                values = x[top]
                out[j, top] = values / np.sort(values)[-min(norm, len(values))]
        return out

    def damped(self, total: np.ndarray, penalty: float | None = None) -> np.ndarray:
        """Scores divided by 1 + p log(1 + listeners), as serving damps them."""
        p = self.penalty if penalty is None else penalty
        return np.asarray(total / (1.0 + p * np.log1p(self.popularity)))

    def blend(self, cut: dict[str, np.ndarray]) -> np.ndarray:
        """The members' cut scores, weighted as the selected model weighs them."""
        return sum((self.weights[m] * cut[m] for m in MEMBERS), np.zeros_like(cut["als"]))

    def score(self, total: np.ndarray) -> dict[str, float]:
        """nDCG@10 and coverage of each user's top 10 by `total` (ties by track id)."""
        ids = np.array(self.matrix.items)
        ranked = {}
        for j, user in enumerate(self.users):
            t = total[j].astype(np.float64)
            t[self.heard(j)] = -np.inf
            top = np.argpartition(-t, 10)[:10]
            top = top[np.lexsort((ids[top], -t[top]))]
            ranked[user] = [lastfm.artist_of(i) for i in ids[top]]
        row = evaluate(ranked, {u: self.split.test[u] for u in self.users},
                       self.catalog_size).row()
        return {"nDCG@10": row["nDCG@10"], "coverage": row["coverage"]}


async def _member_scores(model: PublishedModel, split: Split,
                         users: list[str]) -> dict[str, np.ndarray]:
    models = MemoryModelStore()
    await models.publish(model)
    serving = models.serving
    assert serving is not None
    n = len(serving.manifest.track_ids)
    raw = {m: np.zeros((len(users), n), np.float32) for m in MEMBERS}
    for j, user in enumerate(users):
        history = [Engagement(lastfm.user_key(user), lastfm.track_key(a), v, False, 0.0)
                   for a, v in split.train[user].items()]
        raw["als"][j] = await _als_scores(models, serving, history, 0)
        strongest = sorted(history, key=lambda e: -e.value)[:200]
        order = np.array([serving.index[e.track_id] for e in strongest])
        values = np.array([e.value for e in strongest])
        for member in ("ease", "itemknn"):
            found = await _neighbour_evidence(models, serving, member, order, values)
            if found is not None:
                raw[member][j] = np.bincount(found.cols, weights=found.parts, minlength=n)
    return raw


def load_bench() -> Bench:
    """The selected model fitted on seed 2011's validation training data, and its
    members' scores for the validation users."""
    data = lastfm.load()
    split = split_per_user(data.plays, seed=SEED)
    validation = split_per_user(split.train, seed=SEED + VALIDATION_SEED_OFFSET)
    engagements = _service_ids(training_engagements(validation))
    params = fitting.DEFAULT_PARAMS
    model = fitting.fit(engagements, "ensemble", "alternatives", params)
    matrix = fitting.build_matrix(engagements)
    users = sorted(validation.test, key=int)
    index = {u: i for i, u in enumerate(matrix.users)}
    with threadpool_limits(1, "blas"):
        raw = asyncio.run(_member_scores(model, validation, users))
    return Bench(validation, users, matrix,
                 np.array([index[lastfm.user_key(u)] for u in users]), raw,
                 len(data.artists), dict(model.manifest.members), params.popularity_penalty)


def _user_rows(bench: Bench, sources: Callable[[str], list[int]],
               matrix: sp.csr_matrix) -> np.ndarray:
    """Per validation user, the sum of `matrix`'s rows of the users `sources` names."""
    out = np.zeros((len(bench.users), matrix.shape[1]), np.float32)
    for j, user in enumerate(bench.users):
        rows = sources(user)
        if rows:
            out[j] = np.asarray(matrix[rows].sum(axis=0)).ravel()
    return out


def _ease_variants(bench: Bench) -> Iterator[tuple[str, np.ndarray]]:
    """Raw EASE scores with other stored rows, and EDLAE's."""
    keep = algorithms.prune_items(bench.matrix.binary, 2)
    x = bench.matrix.binary[:, keep].astype(np.float64)
    gram = (x.T @ x).toarray()
    users = bench.matrix.binary[bench.rows][:, keep].astype(np.float64)
    for label, dropout, entries, magnitude in (
            ("EASE rows: 200 entries by magnitude (negatives kept)", 0.0, 200, True),
            ("EASE rows: 1,000 positive entries", 0.0, 1000, False),
            ("EDLAE, dropout 0.25", 0.25, 200, False),
            ("EDLAE, dropout 0.4", 0.4, 200, False)):
        a = gram.copy()
        a[np.diag_indices_from(a)] += 200.0 + dropout / (1 - dropout) * np.diag(gram)
        p = np.linalg.inv(a)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        if magnitude:
            k = min(entries, b.shape[1])
            cols = np.argpartition(-np.abs(b), k - 1, axis=1)[:, :k]
            values = np.take_along_axis(b, cols, axis=1).ravel()
            rows = sp.csr_matrix((values, (np.repeat(np.arange(len(b)), k), cols.ravel())),
                                 shape=b.shape)
        else:
            rows = algorithms.top_per_row(b.astype(np.float32), entries)
        scores = np.zeros((len(bench.users), len(bench.matrix.items)), np.float32)
        scores[:, keep] = (users @ rows).toarray()
        yield label, scores


def _bm25_als(bench: Bench) -> np.ndarray:
    """Raw scores of implicit's ALS fitted on BM25-weighted play counts (its Last.fm
    example's weighting), the selected factors and iterations, alpha 1."""
    from implicit.nearest_neighbours import bm25_weight

    plays = bench.matrix.confidence.copy()
    plays.data = np.expm1(np.abs(plays.data))  # back from log1p to play counts
    params = fitting.DEFAULT_PARAMS
    als = algorithms.fit_als(bm25_weight(plays, K1=100, B=0.8).tocsr(), params.als_factors,
                             params.als_regularization, params.als_iterations, 1.0)
    return np.asarray(als.score_users(bench.rows))


def _reranked(bench: Bench, cut: dict[str, np.ndarray]) -> np.ndarray:
    """A gradient-boosted classifier re-ranks each user's top 100, trained on half the
    validation users and applied to the other half (both ways)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    base = bench.blend(cut)
    damped = bench.damped(base)
    log_pop = np.log1p(bench.popularity)
    features, labels, candidates = [], [], []
    ids = np.array(bench.matrix.items)
    for j, user in enumerate(bench.users):
        t = damped[j].copy()
        t[bench.heard(j)] = -1
        top = np.argsort(-t, kind="stable")[:100]
        candidates.append(top)
        features.append(np.stack([cut["als"][j, top], cut["ease"][j, top],
                                  cut["itemknn"][j, top], base[j, top], damped[j, top],
                                  np.arange(100), log_pop[top],
                                  np.full(100, np.log1p(len(bench.heard(j))))], axis=1))
        labels.append([lastfm.artist_of(i) in bench.split.test[user] for i in ids[top]])
    x, y = np.array(features), np.array(labels)
    halves = np.array_split(np.random.default_rng(0).permutation(len(bench.users)), 2)
    predicted = np.zeros(y.shape)
    for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                               random_state=0)
        model.fit(x[train].reshape(-1, x.shape[2]), y[train].ravel())
        predicted[test] = model.predict_proba(
            x[test].reshape(-1, x.shape[2]))[:, 1].reshape(len(test), -1)
    total = np.zeros_like(base)
    for j, top in enumerate(candidates):
        total[j, top] = predicted[j] + 1e-9  # above every item left out of the top 100
    return total


def alternatives(bench: Bench) -> Iterator[tuple[str, dict[str, float]]]:
    """(what was tried, its validation nDCG@10 and coverage), the selection first."""
    cut = {m: bench.cut(bench.raw[m]) for m in MEMBERS}
    yield "selected (make eval-recs)", bench.score(bench.damped(bench.blend(cut)))
    for label, scores in _ease_variants(bench):
        yield label, bench.score(bench.damped(bench.blend({**cut, "ease": bench.cut(scores)})))
    positive = algorithms.positive_part(bench.matrix.confidence).tocsr()
    index = {u: i for i, u in enumerate(bench.matrix.users)}
    friends: dict[str, set[str]] = collections.defaultdict(set)
    for line in (lastfm.DATA / "user_friends.dat").read_text().splitlines()[1:]:
        a, b = line.split("\t")
        friends[a].add(b)
        friends[b].add(a)
    social = bench.cut(bench.damped(_user_rows(bench, lambda u: [
        index[lastfm.user_key(f)] for f in friends[u] if lastfm.user_key(f) in index],
        positive), 0.25))
    for weight in (0.1, 0.2):
        yield (f"friends' plays as a fourth member, weight {weight}",
               bench.score(bench.damped((1 - weight) * bench.blend(cut) + weight * social)))
    norms = np.sqrt(np.asarray(positive.multiply(positive).sum(axis=1)).ravel())

    def neighbours(user: str) -> list[int]:
        r = index[lastfm.user_key(user)]
        sims = np.asarray((positive @ positive[r].T).todense()).ravel() / (
            norms * norms[r] + 1e-9)
        sims[r] = 0
        return [int(i) for i in np.argpartition(-sims, 200)[:200]]

    user_knn = bench.cut(_user_rows(bench, neighbours, positive))
    yield ("user-kNN (200 neighbours) as a fourth member, weight 0.15",
           bench.score(bench.damped(0.85 * bench.blend(cut) + 0.15 * user_knn)))
    yield ("ALS on BM25-weighted plays (K1 100, B 0.8) in place of ALS",
           bench.score(bench.damped(bench.blend({**cut, "als": bench.cut(_bm25_als(bench))}))))
    yield ("members divided by their 10th best score, not the best",
           bench.score(bench.damped(bench.blend({m: bench.cut(bench.raw[m], 10)
                                                 for m in MEMBERS}))))
    yield "gradient-boosted re-ranker of the top 100", bench.score(_reranked(bench, cut))


def main() -> None:
    """Prints the table."""
    bench = load_bench()
    print(f"validation split of seed {SEED} (seed {SEED + VALIDATION_SEED_OFFSET}), "
          f"{len(bench.users)} users, collaborative-only lists")
    for label, row in alternatives(bench):
        print(f"{label:<62} nDCG@10 {row['nDCG@10']:.4f}  coverage {row['coverage']:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
