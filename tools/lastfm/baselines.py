"""In-process baselines for `make eval-recs`: popularity, implicit ALS and EASE.

They see the same training split as the service, through the same matrix builder and
hyperparameters (services.recommend.fitting), but unpruned and without the vector store:
EASE keeps its whole dense B over the items with at least two listeners, and ALS ranks
every item with the trained user factors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from services.recommend import algorithms, fitting
from services.recommend.events import Engagement
from services.recommend.fitting import Hyperparameters, Matrix, build_matrix
from services.recommend.offline_eval import top_n

Ranker = Callable[[int], np.ndarray]  # user row -> a score per item


def rank_all(matrix: Matrix, users: list[str], score: Ranker, n: int = 10) -> dict[str,
                                                                               list[str]]:
    """Each user's top n items by the ranker, their seen items left out."""
    index = {u: i for i, u in enumerate(matrix.users)}
    out = {}
    for user in users:
        row = index[user]
        seen = matrix.confidence[row].indices
        out[user] = [matrix.items[i] for i in top_n(score(row), seen, n)]
    return out


def baselines(engagements: list[Engagement], users: list[str],
              params: Hyperparameters | None = None) -> dict[str, dict[str, list[str]]]:
    """Top-10 lists of the baselines (popularity, implicit ALS, EASE) for these users."""
    params = params or fitting.DEFAULT_PARAMS
    matrix = build_matrix(engagements)
    popularity = algorithms.popularity(matrix.binary)
    als = algorithms.fit_als(matrix.confidence, params.als_factors, params.als_regularization,
                             params.als_iterations, params.als_alpha)
    keep = algorithms.prune_items(matrix.binary, params.min_item_users)
    ease = algorithms.ease_weights(matrix.binary[:, keep], params.ease_l2)

    def ease_scores(row: int) -> np.ndarray:
        scores = np.full(len(matrix.items), -np.inf)
        scores[keep] = matrix.binary[row][:, keep] @ ease
        return scores

    return {
        "popularity": rank_all(matrix, users, lambda row: popularity),
        "implicit ALS": rank_all(matrix, users, lambda row: als.score_users(np.array([row]))[0]),
        "EASE": rank_all(matrix, users, ease_scores),
    }
