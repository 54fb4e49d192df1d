"""The Qdrant adapter of the ModelStore port: the model in this service's own collections.

Each model version lives in two collections, `recs_items_<n>` and `recs_users_<n>`:
items carry the ALS item factors (dense, dot) and their rows of the EASE and item-kNN
matrices (sparse vectors: row i holds what item i contributes to other items); users
carry the ALS user factors (cosine, for "users like this user"). The aliases
`recs_items` / `recs_users` name the version that serves; publishing a new version
switches both in one alias operation, so a reader sees the old model or the new one,
never a mix. The model's manifest travels as the items collection's metadata.

Qdrant's embedded client is not thread-safe, so every call runs on one store thread;
publishing writes in small batches so that serving reads interleave with it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from qdrant_client import QdrantClient, models

from cadenza.kit.qdrant import call_qdrant, open_qdrant
from services.recommend.model import ALS, ItemArrays, Manifest, PublishedModel, ServingModel

logger = logging.getLogger(__name__)

ITEMS, USERS = "recs_items", "recs_users"
WRITE_BATCH = 256
_USER_NS = uuid.UUID("0b7e3c1e-55a1-4a53-9a51-6a3f2f0e2d41")
T = TypeVar("T")


def user_point(user_id: str) -> str:
    """The point id of a user in the users collection (Qdrant ids are ints or UUIDs)."""
    return str(uuid.uuid5(_USER_NS, user_id))


class QdrantModelStore:
    """The ModelStore port on Qdrant, embedded or a server; see the module docstring."""

    def __init__(self, client: QdrantClient, kind: str) -> None:
        self.client = client
        self.kind = kind
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-store")
        # The version that serves; replaced (one reference swap) after each publish.
        self.serving: ServingModel | None = None

    @classmethod
    def open(cls, path: str, url: str = "", api_key: str = "") -> QdrantModelStore:
        """Opens a Qdrant server when `url` is set, else the embedded store at `path`."""
        return cls(*open_qdrant(path, url, api_key))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one client call on the store thread; store failures become Unavailable."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: call_qdrant(f"model store ({self.kind})", fn, *args,
                                              **kwargs))

    # -- reading the serving model ---------------------------------------------------

    async def load(self) -> None:
        """Drops half-published versions and loads the one the aliases name."""
        await self.remove_unpublished()
        targets = await self._alias_targets()
        if ITEMS not in targets or USERS not in targets:
            self.serving = None
            return
        info = await self.run(self.client.get_collection, targets[ITEMS])
        manifest = Manifest(**(info.config.metadata or {}))
        self.serving = ServingModel.of(manifest, targets[ITEMS], targets[USERS])

    async def item_rows(self, model: ServingModel, member: str,
                        items: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sparse rows (indices, values) of a neighbour member for these item indices."""
        records = await self.run(self.client.retrieve, model.items, items, with_payload=False,
                                 with_vectors=[member])
        rows = {}
        for r in records:
            vector = r.vector.get(member) if isinstance(r.vector, dict) else None
            if isinstance(vector, models.SparseVector):
                rows[int(r.id)] = (np.asarray(vector.indices), np.asarray(vector.values))
        return rows

    async def item_factors(self, model: ServingModel, items: list[int]) -> dict[int, np.ndarray]:
        """ALS item factors (float32) of these item indices, for those that have one."""
        records = await self.run(self.client.retrieve, model.items, items, with_payload=False,
                                 with_vectors=[ALS])
        return {int(r.id): np.asarray(r.vector[ALS], dtype=np.float32)
                for r in records if isinstance(r.vector, dict) and ALS in r.vector}

    async def nearest_items(self, model: ServingModel, vector: np.ndarray,
                            limit: int) -> list[tuple[int, float]]:
        """The `limit` items with the largest dot product with `vector`, best first."""
        response = await self.run(self.client.query_points, model.items,
                                  query=vector.astype(float).tolist(), using=ALS, limit=limit,
                                  with_payload=False)
        return [(int(p.id), float(p.score)) for p in response.points]

    async def user_factor(self, model: ServingModel, user_id: str) -> np.ndarray | None:
        """The user's stored ALS factor (float32, unit length: the collection is cosine);
        None when the model lacks the user."""
        records = await self.run(self.client.retrieve, model.users, [user_point(user_id)],
                                 with_payload=False, with_vectors=[ALS])
        if not records or not isinstance(records[0].vector, dict):
            return None
        return np.asarray(records[0].vector[ALS], dtype=np.float32)

    async def nearest_users(self, model: ServingModel, vector: np.ndarray, limit: int,
                            exclude: str) -> list[tuple[str, float]]:
        """The `limit` users nearest `vector` by cosine, best first, without `exclude`."""
        response = await self.run(
            self.client.query_points, model.users, query=vector.astype(float).tolist(), using=ALS,
            limit=limit, with_payload=True, query_filter=models.Filter(must_not=[
                models.HasIdCondition(has_id=[user_point(exclude)])]))
        return [(str(p.payload["user_id"]), float(p.score)) for p in response.points
                if p.payload]

    async def read_items(self, model: ServingModel) -> PublishedModel:
        """The version's item factors and neighbour rows, read back whole (no users)."""
        n = len(model.manifest.track_ids)
        members = [m for m in model.manifest.members if m != ALS]
        factors: np.ndarray | None = None
        triples: dict[str, tuple[list[int], list[np.ndarray], list[np.ndarray]]] = {
            m: ([], [], []) for m in members}
        offset: Any = None
        while True:
            records, offset = await self.run(self.client.scroll, model.items, limit=1024,
                                             offset=offset, with_payload=False,
                                             with_vectors=True)
            for r in records:
                vectors = r.vector if isinstance(r.vector, dict) else {}
                i = int(r.id)
                if ALS in vectors:
                    dense = np.asarray(vectors[ALS], dtype=np.float32)
                    if factors is None:
                        factors = np.zeros((n, len(dense)), dtype=np.float32)
                    factors[i] = dense
                for member in members:
                    row = vectors.get(member)
                    if isinstance(row, models.SparseVector):
                        rows, cols, values = triples[member]
                        rows.append(i)
                        cols.append(np.asarray(row.indices, dtype=np.int64))
                        values.append(np.asarray(row.values, dtype=np.float32))
            if offset is None:
                break
        return PublishedModel(model.manifest, factors, [], None,
                              {m: _csr(n, *triples[m]) for m in members})

    # -- publishing ------------------------------------------------------------------

    async def publish(self, model: PublishedModel) -> None:
        """Writes the new version's collections, then switches both aliases at once."""
        number = await self._next_number()
        items, users = f"{ITEMS}_{number}", f"{USERS}_{number}"
        k = None if model.item_factors is None else model.item_factors.shape[1]
        dense = {ALS: models.VectorParams(size=k, distance=models.Distance.DOT)} if k else {}
        sparse = {m: models.SparseVectorParams() for m in model.neighbours}
        await self.run(self.client.create_collection, items, vectors_config=dense,
                       sparse_vectors_config=sparse, metadata=model.manifest.to_metadata())
        await self.run(self.client.create_collection, users, vectors_config={
            ALS: models.VectorParams(size=k or 1, distance=models.Distance.COSINE)})
        # Building points is CPU work: off the event loop, and off the store thread.
        item_points = await asyncio.to_thread(_item_points, model)
        user_points = await asyncio.to_thread(_user_points, model)
        for batch in _batches(item_points, WRITE_BATCH):
            await self.run(self.client.upsert, items, points=batch, wait=True)
        for batch in _batches(user_points, WRITE_BATCH):
            await self.run(self.client.upsert, users, points=batch, wait=True)
        old = await self._alias_targets()
        await self.run(self.client.update_collection_aliases, change_aliases_operations=[
            *(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a))
              for a in old),
            models.CreateAliasOperation(create_alias=models.CreateAlias(
                collection_name=items, alias_name=ITEMS)),
            models.CreateAliasOperation(create_alias=models.CreateAlias(
                collection_name=users, alias_name=USERS)),
        ])
        previous = self.serving
        self.serving = ServingModel.of(model.manifest, items, users)
        # Requests still running on the version before the old one have long finished;
        # the old one stays until the next publish for the ones in flight right now.
        await self.remove_unpublished(keep=() if previous is None else
                                      (previous.items, previous.users))
        logger.info("published model %s as %s", model.manifest.version, items)

    async def _alias_targets(self) -> dict[str, str]:
        aliases = await self.run(self.client.get_aliases)
        return {a.alias_name: a.collection_name for a in aliases.aliases
                if a.alias_name in (ITEMS, USERS)}

    async def _next_number(self) -> int:
        """One past the highest version number present, so a crashed publish is skipped."""
        collections = await self.run(self.client.get_collections)
        numbers = [int(m.group(1)) for c in collections.collections
                   if (m := re.fullmatch(rf"(?:{ITEMS}|{USERS})_(\d+)", c.name))]
        return max(numbers, default=0) + 1

    async def remove_unpublished(self, keep: tuple[str, ...] = ()) -> None:
        """Drops versions no alias names (and not in `keep`): superseded ones, and those
        left by a publish that crashed before its alias switch."""
        live = set((await self._alias_targets()).values()) | set(keep)
        collections = await self.run(self.client.get_collections)
        for c in collections.collections:
            if re.fullmatch(rf"(?:{ITEMS}|{USERS})_\d+", c.name) and c.name not in live:
                await self.run(self.client.delete_collection, c.name)

    def arrays(self, model: ServingModel) -> ItemArrays | None:
        """None: the rows stay in Qdrant (CachedModelStore keeps them in memory)."""
        return None

    def close(self) -> None:
        """Closes the client on its thread, then stops the thread."""
        self._thread.submit(self.client.close).result()
        self._thread.shutdown(wait=True)
def _item_points(model: PublishedModel) -> list[models.PointStruct]:
    points = []
    n = len(model.manifest.track_ids)
    for i in range(n):
        vector: dict[str, Any] = {}
        if model.item_factors is not None:
            vector[ALS] = model.item_factors[i].astype(float).tolist()
        for member, rows in model.neighbours.items():
            row = rows.getrow(i)
            if row.nnz:
                vector[member] = models.SparseVector(indices=row.indices.tolist(),
                                                     values=row.data.astype(float).tolist())
        if vector:
            points.append(models.PointStruct(id=i, vector=vector, payload={
                "track_id": model.manifest.track_ids[i]}))
    return points


def _user_points(model: PublishedModel) -> list[models.PointStruct]:
    if model.user_factors is None:
        return []
    return [models.PointStruct(id=user_point(u), vector={ALS: f.astype(float).tolist()},
                               payload={"user_id": u})
            for u, f in zip(model.user_ids, model.user_factors, strict=True)
            if np.any(f)]


def _batches(points: list[models.PointStruct], size: int) -> list[list[models.PointStruct]]:
    return [points[i:i + size] for i in range(0, len(points), size)]


def _csr(n: int, rows: list[int], cols: list[np.ndarray],
         values: list[np.ndarray]) -> sp.csr_matrix:
    """An n x n CSR matrix from per-row index and value arrays."""
    counts = [len(c) for c in cols]
    return sp.csr_matrix((np.concatenate(values) if values else np.zeros(0, np.float32),
                          (np.repeat(rows, counts).astype(np.int64),
                           np.concatenate(cols) if cols else np.zeros(0, np.int64))),
                         shape=(n, n))
