"""The serving model's item arrays in memory, in front of the store that keeps them.

Collaborative scores read, per request, the stored rows of up to 200 items per neighbour
member and the ALS item factors (a fold-in and a nearest-items search). From the Qdrant
store that is three store round trips on its one thread. A version is published rarely and
never changes, so this wrapper keeps each serving version's item rows and factors as
arrays (the in-memory store's exact reads) and answers those reads from them. User factors
(SimilarUsers only) stay in the store. Memory: the version serving and the one before it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Protocol

import numpy as np

from services.recommend.memory_model_store import MemoryModelStore
from services.recommend.model import ItemArrays, ModelStore, PublishedModel, ServingModel

logger = logging.getLogger(__name__)


class ItemReader(Protocol):
    """A store that can read a whole stored version's items back."""

    async def read_items(self, model: ServingModel) -> PublishedModel:
        """The version's manifest, item factors and neighbour rows (no users)."""
        ...


class CachedModelStore:
    """A ModelStore whose item reads come from memory; see the module docstring."""

    def __init__(self, store: ModelStore, reader: ItemReader) -> None:
        self.store = store
        self.reader = reader
        self._memory = MemoryModelStore()

    @property
    def serving(self) -> ServingModel | None:
        """The version that serves now (the store's)."""
        return self.store.serving

    async def load(self) -> None:
        """Loads the store's serving version, then reads its items into memory."""
        await self.store.load()
        serving = self.store.serving
        if serving is not None and not self._memory.holds(serving):
            started = time.perf_counter()
            self._memory.keep(serving.items, await self.reader.read_items(serving), None)
            logger.info("model %s read into memory in %.1f s", serving.manifest.version,
                        time.perf_counter() - started)

    async def publish(self, model: PublishedModel) -> None:
        """Publishes through the store, then keeps the new version's items in memory."""
        previous = self.store.serving
        await self.store.publish(model)
        serving = self.store.serving
        if serving is not None:
            items_only = dataclasses.replace(model, user_ids=[], user_factors=None)
            self._memory.keep(serving.items, items_only,
                              None if previous is None else previous.items)

    def holds(self, model: ServingModel) -> bool:
        """True when this version's item reads are answered from memory."""
        return self._memory.holds(model)

    def arrays(self, model: ServingModel) -> ItemArrays | None:
        """The version's item arrays, when they are in memory."""
        return self._memory.arrays(model) if self._memory.holds(model) else None

    async def item_rows(self, model: ServingModel, member: str,
                        items: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sparse rows of a neighbour member for these item indices."""
        if self._memory.holds(model):
            return await self._memory.item_rows(model, member, items)
        return await self.store.item_rows(model, member, items)

    async def item_factors(self, model: ServingModel, items: list[int]) -> dict[int, np.ndarray]:
        """ALS item factors of these item indices."""
        if self._memory.holds(model):
            return await self._memory.item_factors(model, items)
        return await self.store.item_factors(model, items)

    async def nearest_items(self, model: ServingModel, vector: np.ndarray,
                            limit: int) -> list[tuple[int, float]]:
        """The `limit` items with the largest dot product with `vector`, best first."""
        if self._memory.holds(model):
            return await self._memory.nearest_items(model, vector, limit)
        return await self.store.nearest_items(model, vector, limit)

    async def user_factor(self, model: ServingModel, user_id: str) -> np.ndarray | None:
        """The user's stored ALS factor (from the store)."""
        return await self.store.user_factor(model, user_id)

    async def nearest_users(self, model: ServingModel, vector: np.ndarray, limit: int,
                            exclude: str) -> list[tuple[str, float]]:
        """The users nearest `vector` (from the store)."""
        return await self.store.nearest_users(model, vector, limit, exclude)

    def close(self) -> None:
        """Closes the store and drops the arrays."""
        self._memory.close()
        self.store.close()
