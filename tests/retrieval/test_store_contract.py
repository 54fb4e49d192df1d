"""One contract for the VectorStore port, run against every Qdrant mode available here.

Embedded on disk (the default) and in memory always; a Qdrant server too when QDRANT_URL
is set in the environment.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import numpy as np
import pytest
from qdrant_client import QdrantClient

from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import Range, TrackFilter
from services.retrieval.qdrant_store import COLLECTION, QdrantStore
from services.retrieval.similarity import DEFAULT_WEIGHTS, contributions, weighted_query
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR
from tests.retrieval.helpers import make_track, random_blocks, random_text_vector

MODES = ["embedded-disk", "embedded-memory"] + (["server"] if os.environ.get("QDRANT_URL")
                                                 else [])


@pytest.fixture(params=MODES)
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[QdrantStore]:
    if request.param == "embedded-disk":
        opened = QdrantStore.open(str(tmp_path / "qdrant"))
    elif request.param == "embedded-memory":
        opened = QdrantStore(QdrantClient(location=":memory:"), "qdrant-embedded")
    else:
        opened = QdrantStore.open("", os.environ["QDRANT_URL"])
        opened.client.delete_collection(COLLECTION)
        opened = QdrantStore.open("", os.environ["QDRANT_URL"])
    yield opened
    opened.close()


def fill(store: QdrantStore, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {}
    for i in range(n):
        track = make_track(i, rng)
        vectors[track.metadata.track_id] = random_blocks(rng)
        store.upsert(track, vectors[track.metadata.track_id], random_text_vector(rng))
    return vectors


def test_upsert_then_get_round_trips_metadata_and_features(store: QdrantStore) -> None:
    rng = np.random.default_rng(1)
    track = make_track(1, rng, attributes={"meter": "3/4"}, description="a chorale")
    assert store.upsert(track, random_blocks(rng), random_text_vector(rng)) is False
    [stored] = store.get(["t00001"], with_vectors=True)
    assert stored.track == track
    assert stored.audio_vector is not None and stored.audio_vector.shape == (
        sum(g.dimensions for g in FEATURE_GROUPS),)


def test_reingesting_the_same_id_replaces_and_never_duplicates(store: QdrantStore) -> None:
    rng = np.random.default_rng(2)
    store.upsert(make_track(5, rng), random_blocks(rng), random_text_vector(rng))
    assert store.upsert(make_track(5, rng, title="Renamed"), random_blocks(rng),
                        random_text_vector(rng)) is True
    assert store.count(TrackFilter()) == 1
    assert store.get(["t00005"])[0].track.metadata.title == "Renamed"


def test_metadata_only_tracks_have_no_audio_vector(store: QdrantStore) -> None:
    rng = np.random.default_rng(3)
    store.upsert(make_track(1, rng, audio=False), None, random_text_vector(rng))
    store.upsert(make_track(2, rng), random_blocks(rng), random_text_vector(rng))
    assert store.get(["t00001"], with_vectors=True)[0].audio_vector is None
    assert store.count(TrackFilter(has_audio=True)) == 1
    # A condition on an audio feature leaves metadata-only tracks out.
    assert store.count(TrackFilter(tempo_bpm=Range(0, 1000))) == 1
    hits = store.query(AUDIO_VECTOR, random_blocks(rng), TrackFilter(), 10, 0, [])
    assert [h.stored.track.metadata.track_id for h in hits] == ["t00002"]


def test_delete_removes_and_reports_absence(store: QdrantStore) -> None:
    fill(store, 3)
    assert store.delete("t00001") is True
    assert store.delete("t00001") is False
    assert store.get(["t00000", "t00001", "t00002"]) and store.count(TrackFilter()) == 2


def test_filters_combine(store: QdrantStore) -> None:
    fill(store, 60)
    everything = [s.track for s in store.get([f"t{i:05d}" for i in range(60)])]

    def expected(predicate: object) -> set[str]:
        return {t.metadata.track_id for t in everything if predicate(t)}  # type: ignore

    f = TrackFilter(artists=("Composer 1", "Composer 2"), tags=("chorale",),
                    year=Range(1710, 1750))
    tracks, _ = store.scroll(f, 100, None)
    assert {t.metadata.track_id for t in tracks} == expected(
        lambda t: t.metadata.artist in f.artists and "chorale" in t.metadata.tags
        and 1710 <= t.metadata.year <= 1750)

    f = TrackFilter(tempo_bpm=Range(90, 120), mode="minor")
    tracks, _ = store.scroll(f, 100, None)
    assert {t.metadata.track_id for t in tracks} == expected(
        lambda t: 90 <= t.features.tempo_bpm <= 120 and t.features.mode == "minor")
    assert tracks  # the filter is not vacuous


def test_scroll_pages_cover_everything_once(store: QdrantStore) -> None:
    fill(store, 25)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.scroll(TrackFilter(), 7, cursor)
        seen += [t.metadata.track_id for t in page]
        if cursor is None:
            break
    assert sorted(seen) == [f"t{i:05d}" for i in range(25)]


def test_weighted_similarity_equals_brute_force(store: QdrantStore) -> None:
    vectors = fill(store, 300, seed=7)
    rng = np.random.default_rng(8)
    weights = dict(zip(DEFAULT_WEIGHTS, rng.dirichlet(np.ones(len(DEFAULT_WEIGHTS))),
                       strict=True))
    query = weighted_query(random_blocks(rng), weights)
    hits = store.query(AUDIO_VECTOR, query, TrackFilter(), 10, 0, [])

    ids = list(vectors)
    matrix = np.stack([vectors[i] for i in ids])
    brute = matrix @ query  # sum_i w_i <q_i, x_i> in float64-free NumPy
    top = [ids[i] for i in np.argsort(-brute)[:10]]
    assert [h.stored.track.metadata.track_id for h in hits] == top
    by_id = dict(zip(ids, brute, strict=True))
    for hit in hits:
        track_id = hit.stored.track.metadata.track_id
        assert abs(hit.score - by_id[track_id]) < 1e-5
        assert hit.stored.audio_vector is not None
        parts = contributions(query, hit.stored.audio_vector)
        assert abs(sum(parts.values()) - hit.score) < 1e-5


def test_exclusions_and_offsets(store: QdrantStore) -> None:
    fill(store, 30)
    rng = np.random.default_rng(9)
    query = random_blocks(rng)
    first = store.query(AUDIO_VECTOR, query, TrackFilter(), 5, 0, [])
    second = store.query(AUDIO_VECTOR, query, TrackFilter(), 5, 5, [])
    top10 = store.query(AUDIO_VECTOR, query, TrackFilter(), 10, 0, [])
    assert [h.stored.track for h in first + second] == [h.stored.track for h in top10]
    excluded = first[0].stored.track.metadata.track_id
    again = store.query(AUDIO_VECTOR, query, TrackFilter(), 5, 0, [excluded])
    assert excluded not in {h.stored.track.metadata.track_id for h in again}


def test_text_vectors_rank_by_cosine(store: QdrantStore) -> None:
    rng = np.random.default_rng(10)
    texts = {}
    for i in range(20):
        texts[f"t{i:05d}"] = random_text_vector(rng)
        store.upsert(make_track(i, rng), random_blocks(rng), texts[f"t{i:05d}"])
    target = texts["t00013"]
    hits = store.query(TEXT_VECTOR, target, TrackFilter(), 3, 0, [])
    assert hits[0].stored.track.metadata.track_id == "t00013"
    assert abs(hits[0].score - 1.0) < 1e-5


def test_embedded_store_survives_reopen(tmp_path: pathlib.Path) -> None:
    store = QdrantStore.open(str(tmp_path / "q"))
    fill(store, 5)
    store.close()
    reopened = QdrantStore.open(str(tmp_path / "q"))
    assert reopened.count(TrackFilter()) == 5
    reopened.close()
