"""The collaborative model as the domain sees it, and the port it is stored behind.

A fitted model (`PublishedModel`) is published through a `ModelStore`; serving reads one
version of it (`ServingModel`) through the same store. Which store serves is chosen at
start-up (`app.py`): Qdrant (embedded or a server) in production, memory for tests and
one-process runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

# Member algorithms of the "collaborative" signal.
ALS, EASE, ITEMKNN = "als", "ease", "itemknn"


@dataclass(frozen=True)
class Manifest:
    """What a model version is; stored with it and returned by GetModelStatus."""

    version: str
    algorithm: str
    members: dict[str, float]  # member algorithm -> weight inside "collaborative"
    track_ids: list[str]  # item index -> track id
    popularity: list[int]  # item index -> listeners with positive evidence
    als_gram: list[list[float]] | None  # Y'Y of the ALS item factors (fold-in)
    als_regularization: float
    als_alpha: float
    run: dict[str, Any]
    # Collaborative scores are divided by 1 + this x log(1 + popularity): a tail item the
    # user's neighbours also play beats a hit they play as much (0 = off; versions stored
    # before it existed read as 0).
    popularity_penalty: float = 0.0

    def to_metadata(self) -> dict[str, Any]:
        """The manifest as a plain dict (what a store keeps; `Manifest(**d)` reads it)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class PublishedModel:
    """A fitted model ready to publish."""

    manifest: Manifest
    item_factors: np.ndarray | None  # items x k (ALS)
    user_ids: list[str]
    user_factors: np.ndarray | None  # users x k (ALS)
    neighbours: dict[str, sp.csr_matrix]  # member -> items x items rows


@dataclass(frozen=True)
class ServingModel:
    """One version. Reads name its storage, not "the latest": a request that started on
    this version finishes on it even if a newer one is published meanwhile."""

    manifest: Manifest
    index: dict[str, int]  # track id -> item index
    # Where the store keeps this version's item and user rows (Qdrant: collection names).
    items: str
    users: str
    # Item indices, most popular first (sorted once per version, not per request).
    by_popularity: list[int]
    # Per item, what its collaborative score is divided by (None: the penalty is off).
    damping: np.ndarray | None = None
    # Y'Y + lambda I of the ALS fold-in as an array (None: no ALS member); converting the
    # manifest's nested list per request cost more than the solve.
    als_system: np.ndarray | None = None
    # Item index -> track id as an array: a request maps hundreds of candidates at once.
    track_array: np.ndarray | None = None

    @classmethod
    def of(cls, manifest: Manifest, items: str, users: str) -> ServingModel:
        """The serving view of a manifest whose rows live under `items` and `users`."""
        order = sorted(range(len(manifest.popularity)), key=lambda i: -manifest.popularity[i])
        damping = None
        if manifest.popularity_penalty:
            damping = 1.0 + manifest.popularity_penalty * np.log1p(
                np.asarray(manifest.popularity, dtype=np.float64))
        system = None
        if manifest.als_gram is not None:
            gram = np.asarray(manifest.als_gram, dtype=np.float64)
            system = gram + manifest.als_regularization * np.eye(len(gram))
        return cls(manifest, {t: i for i, t in enumerate(manifest.track_ids)}, items, users,
                   order, damping, system, np.array(manifest.track_ids, dtype=object))


@dataclass(frozen=True)
class ItemArrays:
    """A version's item reads as arrays in memory: what the reads below return, whole."""

    item_factors: np.ndarray | None  # items x k float32 (ALS)
    neighbours: dict[str, sp.csr_matrix]  # member -> items x items rows


class ModelStore(Protocol):
    """Published model versions: one serves; publishing switches to a new one at once.

    Reads take the `ServingModel` they run on, so that a version stays readable while
    requests that started on it finish (at least until the next publish after it).
    The factor reads (item_factors, nearest_items, user_factor, nearest_users) are for
    versions with ALS among their members (`manifest.als_gram` set).
    """

    @property
    def serving(self) -> ServingModel | None:
        """The version that serves now; None before the first publish (or load)."""

    async def load(self) -> None:
        """Makes the newest published version that the store still holds serve."""

    async def publish(self, model: PublishedModel) -> None:
        """Stores the model as a new version, then makes it serve (readers see the old
        version or the new one, never a mix)."""

    async def item_rows(self, model: ServingModel, member: str,
                        items: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sparse rows (indices, values) of a neighbour member for these item indices;
        items without a row in that member are left out."""

    async def item_factors(self, model: ServingModel, items: list[int]) -> dict[int, np.ndarray]:
        """ALS item factors (float32) of these item indices, for those that have one."""

    async def nearest_items(self, model: ServingModel, vector: np.ndarray,
                            limit: int) -> list[tuple[int, float]]:
        """The `limit` items with the largest dot product with `vector`, best first."""

    async def user_factor(self, model: ServingModel, user_id: str) -> np.ndarray | None:
        """The direction of the user's trained ALS factor (float32, unit length: users
        are compared by cosine); None for a user the model lacks (or whose factor is all
        zeros: such users are not stored)."""

    async def nearest_users(self, model: ServingModel, vector: np.ndarray, limit: int,
                            exclude: str) -> list[tuple[str, float]]:
        """The `limit` users whose factors have the largest cosine with `vector`, best
        first, leaving out `exclude`."""

    def arrays(self, model: ServingModel) -> ItemArrays | None:
        """The version's item factors and rows as arrays, when this store holds them in
        memory (collaborative scoring then reads them without a call per item); None
        otherwise."""

    def close(self) -> None:
        """Releases the store; no call may follow."""
