"""VectorStore on Qdrant Edge: the Qdrant engine in process, one shard on disk.

Unlike qdrant-client's local mode it has real HNSW graphs and payload indexes, so
filters are evaluated by index in Rust rather than point by point in Python.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import qdrant_edge as qe

from services.retrieval.model import Track, TrackFilter
from services.retrieval.points import (
    AUDIO_DIMENSIONS,
    INDEXED_FIELDS,
    TEXT_DIMENSIONS,
    check_examples,
    conditions,
    payload,
    point_id,
    recommend_target,
    stored_track,
)
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR, ScoredTrack, StoredTrack

logger = logging.getLogger(__name__)

KIND = "qdrant-edge"
# The file EdgeShard.create writes; its presence means the directory holds a shard.
_CONFIG_FILE = "edge_config.json"
# Edge reads payload floats back up to 1 ulp off (0.9053558666731177 returns as
# ...176), so the measured values also travel as JSON text, which it keeps verbatim;
# the numeric fields stay for filters, where an ulp does not matter.
_EXACT = "exact_json"
_EXACT_FIELDS = ("features", "ingested_at_unix_s")


def _config() -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={
            # Blocks are unit vectors scaled by w_i at query time, so the dot product is
            # exactly S(x) = sum_i w_i f_i(x).
            AUDIO_VECTOR: qe.EdgeVectorParams(size=AUDIO_DIMENSIONS, distance=qe.Distance.Dot),
            TEXT_VECTOR: qe.EdgeVectorParams(size=TEXT_DIMENSIONS,
                                             distance=qe.Distance.Cosine),
        },
        # Qdrant's defaults, spelled out; segments under full_scan_threshold KB are
        # searched exactly, larger ones through the graph once optimize() has built it.
        # The graph is built on every core: Edge's automatic choice left one of two idle
        # (100k points: 372 s; 123 s on both cores, quiet).
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000,
                                       max_indexing_threads=os.cpu_count() or 1),
    )


def _index_params(kind: str) -> Any:
    # enable_hnsw=False: no payload-aware graph links per keyword value. They multiply
    # the HNSW build time (one sub-graph per tag, artist, ... per vector), and filtered
    # search is already fast here: selective filters are scored exactly from the payload
    # index, broad ones walk the main graph and check the condition.
    if kind == "keyword":
        return qe.KeywordIndexParams(enable_hnsw=False)
    if kind == "integer":
        return qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=False)
    return qe.FloatIndexParams(enable_hnsw=False)


class EdgeStore:
    """One Edge shard with two named vectors: `audio` (dot) and `text` (cosine)."""

    kind = KIND

    def __init__(self, shard: qe.EdgeShard) -> None:
        self.shard = shard

    @classmethod
    def open(cls, path: str) -> EdgeStore:
        """The shard at path, created (with its payload indexes) when there is none."""
        if (pathlib.Path(path) / _CONFIG_FILE).is_file():
            return cls(qe.EdgeShard.load(path))
        shard = qe.EdgeShard.create(path, _config())
        for name, kind in INDEXED_FIELDS.items():
            if kind != "bool":  # unusable here (see to_edge_filter)
                shard.update(qe.UpdateOperation.create_field_index(name, _index_params(kind)))
        return cls(shard)

    def optimize(self) -> None:
        """Builds the HNSW graphs and merges segments, blocking; until then (Edge runs no
        background optimizer) every search is an exact scan, filtered by the payload
        indexes. Slow: 123 s for 100k new points on the 2-core dev machine (after which
        unfiltered search takes about 3 ms instead of 7-11), during which other calls on
        the store wait."""
        started = time.perf_counter()
        if self.shard.optimize():
            logger.info("edge store optimized in %.1f s", time.perf_counter() - started)

    # -- writes ----------------------------------------------------------------------

    def upsert(self, track: Track, audio_vector: np.ndarray | None,
               text_vector: np.ndarray) -> bool:
        """Writes the track whole (one atomic point write); True when it replaced one.

        Durable against a crash of this process once it returns: the engine appends the
        operation to its write-ahead log (memory-mapped) before applying it."""
        pid = point_id(track.metadata.track_id)
        existed = bool(self.shard.retrieve([pid], with_payload=False, with_vector=False))
        self.shard.update(qe.UpdateOperation.upsert_points(
            [_point(track, audio_vector, text_vector)]))
        return existed

    def upsert_many(self, items: Sequence[tuple[Track, np.ndarray | None, np.ndarray]]) -> None:
        """Bulk load (benchmarks, demo catalog): one operation, no replace check."""
        self.shard.update(qe.UpdateOperation.upsert_points(
            [_point(track, audio, text) for track, audio, text in items]))

    def delete(self, track_id: str) -> bool:
        """True when the track existed."""
        pid = point_id(track_id)
        if not self.shard.retrieve([pid], with_payload=False, with_vector=False):
            return False
        self.shard.update(qe.UpdateOperation.delete_points([pid]))
        return True

    # -- reads -----------------------------------------------------------------------

    def get(self, track_ids: list[str], with_vectors: bool = False) -> list[StoredTrack]:
        """The tracks that exist, in the order asked; with both vectors when asked."""
        records = self.shard.retrieve([point_id(t) for t in track_ids], with_payload=True,
                                      with_vector=[AUDIO_VECTOR, TEXT_VECTOR] if with_vectors
                                      else False)
        by_id = {r.payload["track_id"]: _stored(r) for r in records if r.payload}
        return [by_id[t] for t in track_ids if t in by_id]

    def scroll(self, filter: TrackFilter, limit: int,
               after: str | None) -> tuple[list[Track], str | None]:
        """A page in storage order, and the cursor for the next page (None at the end)."""
        records, next_offset = self.shard.scroll(qe.ScrollRequest(
            offset=after or None, limit=limit, filter=to_edge_filter(filter, []),
            with_payload=True, with_vector=False))
        return ([_stored(r).track for r in records],
                None if next_offset is None else str(next_offset))

    def query(self, vector_name: str, vector: np.ndarray, filter: TrackFilter,
              limit: int, offset: int, exclude_ids: list[str]) -> list[ScoredTrack]:
        """Nearest tracks by the named vector's similarity (dot or cosine)."""
        return self._nearest(vector_name, vector, to_edge_filter(filter, exclude_ids),
                             limit, offset)

    def recommend(self, vector_name: str, positive_ids: list[str], negative_ids: list[str],
                  filter: TrackFilter, limit: int, offset: int,
                  exclude_ids: list[str]) -> list[ScoredTrack]:
        """Nearest tracks to the examples' average_vector target (see VectorStore).

        Edge's recommend queries score by best or summed example scores only, so the
        average_vector target is computed here from the stored vectors, and the examples
        are left out by a has_id condition, as Qdrant's own recommend does."""
        examples = [*positive_ids, *negative_ids]
        records = self.shard.retrieve([point_id(t) for t in dict.fromkeys(examples)],
                                      with_payload=["track_id"], with_vector=[vector_name])
        vectors = {r.payload["track_id"]: np.asarray(r.vector[vector_name], dtype=np.float64)
                   for r in records
                   if r.payload and isinstance(r.vector, dict) and vector_name in r.vector}
        check_examples(vectors, vector_name, examples)
        target = recommend_target(vectors, positive_ids, negative_ids)
        return self._nearest(vector_name, target,
                             to_edge_filter(filter, [*examples, *exclude_ids]), limit, offset)

    def _nearest(self, vector_name: str, vector: np.ndarray, edge_filter: qe.Filter | None,
                 limit: int, offset: int) -> list[ScoredTrack]:
        points = self.shard.query(qe.QueryRequest(
            limit=limit, offset=offset,
            query=qe.Query.Nearest(vector.astype(float).tolist(), using=vector_name),
            filter=edge_filter, with_payload=True,
            # Audio hits carry their vector (for per-group contributions); text hits none.
            with_vector=[AUDIO_VECTOR] if vector_name == AUDIO_VECTOR else False))
        return [ScoredTrack(_stored(p), float(p.score)) for p in points]

    def count(self, filter: TrackFilter) -> int:
        """How many tracks match the filter, exactly."""
        return int(self.shard.count(qe.CountRequest(exact=True,
                                                    filter=to_edge_filter(filter, []))))

    def close(self) -> None:
        """Flushes segments to disk (so the next open replays no log) and closes."""
        self.shard.flush()
        self.shard.close()


def _point(track: Track, audio_vector: np.ndarray | None, text_vector: np.ndarray) -> qe.Point:
    vectors: dict[str, Any] = {TEXT_VECTOR: text_vector.astype(float).tolist()}
    if audio_vector is not None:
        vectors[AUDIO_VECTOR] = audio_vector.astype(float).tolist()
    fields = payload(track)
    fields[_EXACT] = json.dumps({k: fields[k] for k in _EXACT_FIELDS if k in fields})
    return qe.Point(point_id(track.metadata.track_id), vectors, fields)


def _stored(record: qe.Record | qe.ScoredPoint) -> StoredTrack:
    vectors = record.vector
    # Both named vectors are dense: the stub's union also allows sparse and multi-vectors.
    audio, text = (cast("list[float] | None", vectors.get(name) if isinstance(vectors, dict)
                        else None) for name in (AUDIO_VECTOR, TEXT_VECTOR))
    fields = dict(record.payload or {})
    fields.update(json.loads(fields.pop(_EXACT, "{}")))
    return stored_track(fields, audio, text)


def to_edge_filter(f: TrackFilter, exclude_ids: list[str]) -> qe.Filter | None:
    """The Edge filter for a TrackFilter minus the excluded ids; None when unfiltered."""
    must: list[Any] = []
    for c in conditions(f):
        if c.any is not None:
            must.append(qe.FieldCondition(key=c.key, match=qe.MatchAny(any=list(c.any))))
        elif c.range is not None:
            must.append(qe.FieldCondition(key=c.key, range=qe.RangeFloat(
                gte=c.range.min, lte=c.range.max)))
        elif isinstance(c.value, bool):
            # MatchValue(True) reaches the engine as the integer 1 and matches no boolean,
            # so bool conditions cannot be expressed. has_audio is the only one: a track
            # has audio exactly when it has features and an audio vector (the catalog
            # writes both or neither).
            assert c.key == "has_audio" and c.value
            must.append(qe.HasVectorCondition(vector=AUDIO_VECTOR))
        elif c.value is not None:
            must.append(qe.FieldCondition(key=c.key, match=qe.MatchValue(value=c.value)))
    must_not: list[Any] = []
    if exclude_ids:
        must_not.append(qe.HasIdCondition(point_ids={point_id(t) for t in exclude_ids}))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)
