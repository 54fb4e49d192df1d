"""From the event log's engagements to a publishable collaborative model (pure, CPU-bound)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from services.recommend import algorithms, selected
from services.recommend.events import Engagement
from services.recommend.model import ALS, EASE, ITEMKNN, Manifest, PublishedModel

# Member weights inside the "collaborative" signal, per algorithm. The ensemble's weights
# and the hyperparameters are chosen by `make eval-recs` on a validation split carved out
# of the Last.fm training data (selected.json); the values here stand without it.
SELECTION = selected.load()
MEMBERS = {
    "ensemble": SELECTION.get("members", {ALS: 0.4, EASE: 0.4, ITEMKNN: 0.2}),
    "als": {ALS: 1.0},
    "ease": {EASE: 1.0},
    "itemknn": {ITEMKNN: 1.0},
}


@dataclass(frozen=True)
class Hyperparameters:
    """The fitting knobs of every member algorithm (`DEFAULT_PARAMS`: the selection's)."""

    als_factors: int = 64
    als_regularization: float = 0.05
    als_alpha: float = 1.0
    als_iterations: int = 15
    ease_l2: float = 200.0
    knn_neighbours: int = 200
    knn_shrink: float = 10.0
    # The item-kNN member's similarity: "cosine" (with knn_shrink) or "rp3beta" (a
    # random walk with rp3_alpha and rp3_beta; see algorithms.rp3beta_weights).
    knn_similarity: str = "cosine"
    rp3_alpha: float = 1.0
    rp3_beta: float = 0.3
    # Neighbour models keep this many entries per item row.
    row_entries: int = 200
    # Items with fewer positive listeners stay out of the neighbour models (their rows
    # would be noise, and EASE's dense inverse costs items^3).
    min_item_users: int = 2
    # The manifest's popularity_penalty (serving damps collaborative scores of hits).
    popularity_penalty: float = 0.0


@dataclass(frozen=True)
class Matrix:
    """Engagements as users x items matrices, with the ids of rows and columns."""

    users: list[str]
    items: list[str]
    confidence: sp.csr_matrix  # signed log-scaled evidence (ALS, item-kNN)
    binary: sp.csr_matrix  # 1 where the evidence is positive (EASE)


def confidence(values: np.ndarray | float) -> np.ndarray:
    """Evidence on a signed log scale. Play counts are heavy-tailed (one listener, 10^4
    plays): the log keeps one fan from dominating; negative evidence keeps its sign for
    ALS. Serving scales a user's evidence with this same function."""
    return np.sign(values) * np.log1p(np.abs(values))


def build_matrix(engagements: list[Engagement]) -> Matrix:
    """The users x items matrices of the engagements (ids sorted)."""
    users = sorted({e.user_id for e in engagements})
    items = sorted({e.track_id for e in engagements})
    u_index = {u: i for i, u in enumerate(users)}
    i_index = {t: i for i, t in enumerate(items)}
    rows = np.array([u_index[e.user_id] for e in engagements], dtype=np.int32)
    cols = np.array([i_index[e.track_id] for e in engagements], dtype=np.int32)
    values = np.array([e.value for e in engagements], dtype=np.float32)
    shape = (len(users), len(items))
    scaled = sp.csr_matrix((confidence(values), (rows, cols)), shape=shape)
    scaled.eliminate_zeros()
    binary = sp.csr_matrix(((values > 0).astype(np.float32), (rows, cols)), shape=shape)
    binary.eliminate_zeros()
    return Matrix(users, items, scaled, binary)


DEFAULT_PARAMS = Hyperparameters(**SELECTION.get("hyperparameters", {}))


def fit(engagements: list[Engagement], algorithm: str, version: str,
        params: Hyperparameters = DEFAULT_PARAMS,
        members: dict[str, float] | None = None) -> PublishedModel:
    """Fits the algorithm's members (weighted as MEMBERS says, or as `members` does) on
    the engagements into a publishable model."""
    started = time.perf_counter()
    matrix = build_matrix(engagements)
    members = dict(MEMBERS[algorithm] if members is None else members)
    n_items = len(matrix.items)
    item_factors = user_factors = gram = None
    if ALS in members:
        als = algorithms.fit_als(matrix.confidence, params.als_factors,
                                 params.als_regularization, params.als_iterations,
                                 params.als_alpha)
        item_factors, user_factors = als.item_factors, als.user_factors
        gram = (item_factors.T @ item_factors).astype(float).tolist()
    keep = algorithms.prune_items(matrix.binary, params.min_item_users)
    neighbours: dict[str, sp.csr_matrix] = {}
    if EASE in members and len(keep) > 1:
        weights = algorithms.ease_weights(matrix.binary[:, keep], params.ease_l2)
        neighbours[EASE] = _full_space(algorithms.top_per_row(weights, params.row_entries),
                                       keep, n_items)
    if ITEMKNN in members and len(keep) > 1:
        weights = _knn_weights(matrix.confidence[:, keep], params)
        neighbours[ITEMKNN] = _full_space(algorithms.top_per_row(weights, params.row_entries),
                                          keep, n_items)
    popularity = algorithms.popularity(matrix.binary).astype(int).tolist()
    manifest = Manifest(
        version=version, algorithm=algorithm, members=members, track_ids=matrix.items,
        popularity=popularity, als_gram=gram, als_regularization=params.als_regularization,
        als_alpha=params.als_alpha, popularity_penalty=params.popularity_penalty,
        run={"users": len(matrix.users), "items": n_items, "engagements": len(engagements),
             "fit_s": round(time.perf_counter() - started, 3)})
    return PublishedModel(manifest, item_factors, matrix.users, user_factors, neighbours)


def _knn_weights(x: sp.csr_matrix, params: Hyperparameters) -> np.ndarray:
    if params.knn_similarity == "rp3beta":
        return algorithms.rp3beta_weights(x, params.rp3_alpha, params.rp3_beta)
    if params.knn_similarity == "cosine":
        return algorithms.itemknn_weights(x, params.knn_shrink)
    raise ValueError(f"knn_similarity is {params.knn_similarity!r}: use cosine or rp3beta")


def _full_space(rows: sp.csr_matrix, keep: np.ndarray, n_items: int) -> sp.csr_matrix:
    """An item-item matrix over the kept items, re-indexed to all items."""
    coo = rows.tocoo()
    return sp.csr_matrix((coo.data, (keep[coo.row], keep[coo.col])), shape=(n_items, n_items))
