"""Collaborative models fitted on a user x item confidence matrix.

Each fit returns a `Scorer`: user rows in, item scores out. The service and the offline
evaluation's baselines call the very same functions, so a baseline is never a weaker
re-implementation of what the service serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ALGORITHMS = ("ease", "als", "itemknn")


@dataclass(frozen=True)
class ItemItemModel:
    """Scores are X_u @ W: EASE's B or item-kNN's pruned similarity (items x items)."""

    weights: sp.csr_matrix  # column j holds what each item contributes to item j

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray((rows @ self.weights).todense(), dtype=np.float32)


@dataclass(frozen=True)
class FactorModel:
    """Scores are U_u . V_j (implicit ALS)."""

    user_factors: np.ndarray  # users x k
    item_factors: np.ndarray  # items x k

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors[user_rows] @ self.item_factors.T, dtype=np.float32)


def positive_part(x: sp.csr_matrix) -> sp.csr_matrix:
    """Negative feedback only steers ALS; neighbourhood models see what was liked."""
    out = x.copy().tocsr()
    out.data = np.maximum(out.data, 0)
    out.eliminate_zeros()
    return out


def fit_ease(x: sp.csr_matrix, l2: float = 200.0, keep_per_item: int = 200) -> ItemItemModel:
    """EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X'X + l2 I)^-1, diag(B) = 0.

    The dense inverse costs items^3: the service fits it on items with enough listeners
    (see `prune_items`). Each column keeps its `keep_per_item` largest weights so that the
    model is a sparse item-item matrix that a vector store can hold.
    """
    x = positive_part(x).astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return ItemItemModel(_keep_top_per_column(b.astype(np.float32), keep_per_item))


def fit_itemknn(x: sp.csr_matrix, neighbours: int = 100, shrink: float = 10.0) -> ItemItemModel:
    """Cosine item-item similarity with shrinkage, each item's `neighbours` best kept."""
    x = positive_part(x).astype(np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    co = (x.T @ x).toarray()
    sim = co / (np.outer(norms, norms) + shrink + 1e-9)
    np.fill_diagonal(sim, 0.0)
    return ItemItemModel(_keep_top_per_column(sim.astype(np.float32), neighbours))


def fit_als(x: sp.csr_matrix, factors: int = 64, regularization: float = 0.05,
            iterations: int = 15, alpha: float = 2.0, seed: int = 7) -> FactorModel:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the `implicit` library."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                    iterations=iterations, alpha=alpha, random_state=seed,
                                    calculate_training_loss=False)
    model.fit(x.astype(np.float32).tocsr(), show_progress=False)
    return FactorModel(np.asarray(model.user_factors), np.asarray(model.item_factors))


def popularity(x: sp.csr_matrix) -> np.ndarray:
    """How many listeners engaged positively with each item."""
    return np.asarray((positive_part(x) > 0).sum(axis=0), dtype=np.float32).ravel()


def prune_items(x: sp.csr_matrix, min_users: int) -> np.ndarray:
    """Indices of the items at least `min_users` listeners engaged with positively."""
    return np.flatnonzero(popularity(x) >= min_users)


def _keep_top_per_column(dense: np.ndarray, keep: int) -> sp.csr_matrix:
    n = dense.shape[0]
    if keep >= n:
        return sp.csr_matrix(dense)
    # argpartition per column: the `keep` largest weights of each column j.
    rows = np.argpartition(-dense, keep - 1, axis=0)[:keep]
    cols = np.broadcast_to(np.arange(n), rows.shape)
    values = dense[rows, cols]
    return sp.csr_matrix((values.ravel(), (rows.ravel(), cols.ravel())), shape=dense.shape)
