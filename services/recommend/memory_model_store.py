"""The in-memory adapter of the ModelStore port: for tests and throwaway one-process runs.

Versions are kept as the fitted arrays themselves and searched exactly (NumPy), so
it answers what Qdrant answers, without its approximate index; nothing survives the
process, so a restart serves nothing until the next training run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from services.recommend.model import ItemArrays, PublishedModel, ServingModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Version:
    """A published model, and its users with a non-zero factor at unit length (as
    Qdrant keeps them in a cosine collection; zero factors are not kept)."""

    model: PublishedModel
    users: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: PublishedModel) -> _Version:
        """The version of a fitted model."""
        users = {} if model.user_factors is None else {
            u: (np.asarray(f, dtype=np.float32) / np.linalg.norm(f)).astype(np.float32)
            for u, f in zip(model.user_ids, model.user_factors, strict=True) if np.any(f)}
        return cls(model, users)


class MemoryModelStore:
    """The ModelStore port in a dict of versions; keeps the serving one and the one
    before it (for requests still running on it), as the Qdrant store does."""

    def __init__(self) -> None:
        self._versions: dict[str, _Version] = {}
        self._number = 0
        self._closed = False
        # The version that serves; replaced (one reference swap) after each publish.
        self.serving: ServingModel | None = None

    async def load(self) -> None:
        """Nothing to read: the version published last in this process keeps serving."""
        self._check_open()

    async def publish(self, model: PublishedModel) -> None:
        """Keeps the model as a new version and makes it serve."""
        self._check_open()
        self._number += 1
        key = f"memory_{self._number}"
        previous = self.serving
        self.keep(key, model, None if previous is None else previous.items)
        self.serving = ServingModel.of(model.manifest, key, key)
        logger.info("published model %s as %s", model.manifest.version, key)

    def keep(self, key: str, model: PublishedModel, previous: str | None) -> None:
        """Holds `model` as the version named `key` (another store's name for it), with
        `previous` the only other version kept (for requests still running on it)."""
        self._check_open()
        self._versions[key] = _Version.of(model)
        for old in [k for k in self._versions if k not in (key, previous)]:
            del self._versions[old]

    def holds(self, model: ServingModel) -> bool:
        """True when this store has the version `model` reads."""
        return model.items in self._versions

    def arrays(self, model: ServingModel) -> ItemArrays | None:
        """The version's item factors and neighbour rows as they were published."""
        version = self._version(model).model
        return ItemArrays(version.item_factors, version.neighbours)

    async def item_rows(self, model: ServingModel, member: str,
                        items: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sparse rows (indices, values) of a neighbour member for these item indices."""
        rows = self._version(model).model.neighbours.get(member)
        if rows is None:
            return {}
        found = {}
        # Slices of the CSR arrays (getrow builds a matrix per row: 50x slower).
        indptr, indices, data = rows.indptr, rows.indices, rows.data
        for i in items:
            if not 0 <= i < rows.shape[0]:
                continue  # no such item: left out, as for an item without a row
            start, end = indptr[i], indptr[i + 1]
            if end > start:
                found[i] = (indices[start:end].astype(np.int64),
                            data[start:end].astype(np.float32).astype(np.float64))
        return found

    async def item_factors(self, model: ServingModel, items: list[int]) -> dict[int, np.ndarray]:
        """ALS item factors (float32) of these item indices, for those that have one."""
        factors = self._version(model).model.item_factors
        if factors is None:
            return {}
        return {i: np.asarray(factors[i], dtype=np.float32) for i in items
                if 0 <= i < len(factors)}

    async def nearest_items(self, model: ServingModel, vector: np.ndarray,
                            limit: int) -> list[tuple[int, float]]:
        """The `limit` items with the largest dot product with `vector`, best first."""
        factors = self._version(model).model.item_factors
        if factors is None:
            return []
        scores = np.asarray(factors, dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
        return [(int(i), float(scores[i])) for i in _top(scores, limit)]

    async def user_factor(self, model: ServingModel, user_id: str) -> np.ndarray | None:
        """The user's trained ALS factor at unit length (float32); None when the model
        lacks the user."""
        return self._version(model).users.get(user_id)

    async def nearest_users(self, model: ServingModel, vector: np.ndarray, limit: int,
                            exclude: str) -> list[tuple[str, float]]:
        """The `limit` users nearest `vector` by cosine, best first, without `exclude`."""
        stored = {u: f for u, f in self._version(model).users.items() if u != exclude}
        norm = float(np.linalg.norm(vector))
        if not stored or norm == 0:
            return []
        ids = list(stored)
        matrix = np.stack([stored[u] for u in ids])
        scores = matrix @ (vector / norm)  # the stored factors are unit length
        return [(ids[i], float(scores[i])) for i in _top(scores, limit)]

    def close(self) -> None:
        """Drops every version; no call may follow."""
        self._closed = True
        self._versions.clear()
        self.serving = None

    def _version(self, model: ServingModel) -> _Version:
        self._check_open()
        try:
            return self._versions[model.items]
        except KeyError:
            raise ValueError(f"model version {model.items} is no longer stored") from None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the model store is closed")


def _top(scores: np.ndarray, limit: int) -> list[int]:
    """Indices of the `limit` largest scores, largest first (ties: lower index first)."""
    limit = min(max(limit, 0), len(scores))
    if limit == 0:
        return []
    best = np.argpartition(-scores, limit - 1)[:limit]  # a full sort costs 10x at 17k items
    best = best[np.lexsort((best, -scores[best]))]
    return [int(i) for i in best]
