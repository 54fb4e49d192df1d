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
    """Scores are X_u @ W: EASE's B or item-kNN's similarity (items x items)."""

    weights: np.ndarray | sp.csr_matrix  # row i: what item i contributes to each item

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores per item for each user row (users x items)."""
        out = rows @ self.weights
        return np.asarray(out.todense() if sp.issparse(out) else out, dtype=np.float32)


@dataclass(frozen=True)
class FactorModel:
    """Scores are U_u . V_j (implicit ALS)."""

    user_factors: np.ndarray  # users x k
    item_factors: np.ndarray  # items x k

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        """Scores per item for these users (rows of the user factors)."""
        return np.asarray(self.user_factors[user_rows] @ self.item_factors.T, dtype=np.float32)


def positive_part(x: sp.csr_matrix) -> sp.csr_matrix:
    """Negative feedback only steers ALS; neighbourhood models see what was liked."""
    out = x.copy().tocsr()
    out.data = np.maximum(out.data, 0)
    out.eliminate_zeros()
    return out


def ease_weights(x: sp.csr_matrix, l2: float = 200.0) -> np.ndarray:
    """EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X'X + l2 I)^-1, diag(B) = 0.

    The dense inverse costs items^3: fit it on items with enough listeners
    (see `prune_items`).
    """
    x = positive_part(x).astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(b, dtype=np.float32)


def itemknn_weights(x: sp.csr_matrix, shrink: float = 10.0) -> np.ndarray:
    """Cosine item-item similarity with shrinkage (small overlaps count for less)."""
    x = positive_part(x).astype(np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    co = (x.T @ x).toarray()
    sim = co / (np.outer(norms, norms) + shrink + 1e-9)
    np.fill_diagonal(sim, 0.0)
    return np.asarray(sim, dtype=np.float32)


def rp3beta_weights(x: sp.csr_matrix, alpha: float = 1.0, beta: float = 0.3) -> np.ndarray:
    """RP3beta (Paudel et al. 2017; a strong neighbour baseline in Dacrema et al. 2019):
    a random walk item -> user -> item, each step's transition probabilities raised to
    `alpha`, divided by the target item's listeners to the power `beta`.

    Where cosine favours what a liked item's listeners all play (the hits), the walk's
    last step spreads over a user's whole row and beta then lowers the hits' share.
    """
    x = positive_part(x).astype(np.float32)
    item_user = _rows_summing_to_one(x.T.tocsr())
    user_item = _rows_summing_to_one(x)
    if alpha != 1.0:
        item_user.data **= alpha
        user_item.data **= alpha
    walk = np.asarray((item_user @ user_item).toarray(), dtype=np.float32)
    listeners = np.maximum(popularity(x), 1)
    walk /= np.power(listeners, beta, dtype=np.float32)[None, :]
    np.fill_diagonal(walk, 0.0)
    return walk


def _rows_summing_to_one(x: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(x.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(sums, 1e-12)) @ x, dtype=np.float32)


def top_per_row(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Each row's k largest positive entries (negative weights only ever lower a score,
    and a sparse row is what a vector store can hold)."""
    n_rows, n_cols = dense.shape
    k = min(k, n_cols)
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n_rows), k)
    values = np.take_along_axis(dense, cols, axis=1).ravel()
    keep = values > 0
    return sp.csr_matrix((values[keep], (rows[keep], cols.ravel()[keep])), shape=dense.shape)


def fit_als(x: sp.csr_matrix, factors: int = 64, regularization: float = 0.05,
            iterations: int = 15, alpha: float = 2.0, seed: int = 7) -> FactorModel:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the `implicit` library."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a BLAS thread pool underneath it only
    # oversubscribes the cores (implicit warns about exactly this).
    with threadpool_limits(1, "blas"):
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
