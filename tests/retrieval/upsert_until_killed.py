"""Upserts tracks into an embedded store forever, printing each id once upsert returned.

`python -m tests.retrieval.upsert_until_killed ENGINE PATH`: the durability test
SIGKILLs it and checks that every acknowledged track survived.
"""

from __future__ import annotations

import sys

import numpy as np

from services.retrieval.edge_store import EdgeStore
from services.retrieval.qdrant_store import QdrantStore
from services.retrieval.store import VectorStore
from tests.retrieval.helpers import make_track, random_blocks, random_text_vector


def main(engine: str, path: str) -> None:
    store: VectorStore = EdgeStore.open(path) if engine == "edge" else QdrantStore.open(path)
    rng = np.random.default_rng(0)
    print("open", flush=True)
    for i in range(1_000_000):
        track = make_track(i, rng)
        store.upsert(track, random_blocks(rng), random_text_vector(rng))
        print(track.metadata.track_id, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
