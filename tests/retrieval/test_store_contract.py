"""One contract for the VectorStore port, run against every Qdrant mode available here.

qdrant-client's local mode on disk and in memory, and Qdrant Edge on disk, always; a
Qdrant server too when QDRANT_URL is set in the environment.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from cadenza.kit.errors import NotFound
from services.retrieval.edge_store import EdgeStore
from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import Range, TrackFilter
from services.retrieval.qdrant_store import COLLECTION, QdrantStore, point_id
from services.retrieval.similarity import DEFAULT_WEIGHTS, contributions, weighted_query
from services.retrieval.store import AUDIO_VECTOR, TEXT_VECTOR, ScoredTrack, VectorStore
from tests.retrieval.helpers import make_track, random_blocks, random_text_vector

MODES = ["embedded-disk", "embedded-memory", "edge"] + (
    ["server"] if os.environ.get("QDRANT_URL") else [])
# The engines that keep a store in a directory of their own, by how they open one.
ON_DISK: dict[str, Callable[[str], VectorStore]] = {"embedded-disk": QdrantStore.open,
                                                    "edge": EdgeStore.open}


@pytest.fixture(params=MODES)
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[VectorStore]:
    opened: VectorStore
    if request.param in ON_DISK:
        opened = ON_DISK[request.param](str(tmp_path / "store"))
    elif request.param == "embedded-memory":
        opened = QdrantStore(QdrantClient(location=":memory:"), "qdrant-embedded")
    else:
        server = QdrantStore.open("", os.environ["QDRANT_URL"])
        server.client.delete_collection(COLLECTION)
        opened = QdrantStore.open("", os.environ["QDRANT_URL"])
    yield opened
    opened.close()


def fill(store: VectorStore, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {}
    for i in range(n):
        track = make_track(i, rng)
        vectors[track.metadata.track_id] = random_blocks(rng)
        store.upsert(track, vectors[track.metadata.track_id], random_text_vector(rng))
    return vectors


def test_upsert_then_get_round_trips_metadata_and_features(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    track = make_track(1, rng, attributes={"meter": "3/4"}, description="a chorale")
    assert store.upsert(track, random_blocks(rng), random_text_vector(rng)) is False
    [stored] = store.get(["t00001"], with_vectors=True)
    assert stored.track == track
    assert stored.audio_vector is not None and stored.audio_vector.shape == (
        sum(g.dimensions for g in FEATURE_GROUPS),)


def test_reingesting_the_same_id_replaces_and_never_duplicates(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    store.upsert(make_track(5, rng), random_blocks(rng), random_text_vector(rng))
    assert store.upsert(make_track(5, rng, title="Renamed"), random_blocks(rng),
                        random_text_vector(rng)) is True
    assert store.count(TrackFilter()) == 1
    assert store.get(["t00005"])[0].track.metadata.title == "Renamed"


def test_metadata_only_tracks_have_no_audio_vector(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    store.upsert(make_track(1, rng, audio=False), None, random_text_vector(rng))
    store.upsert(make_track(2, rng), random_blocks(rng), random_text_vector(rng))
    assert store.get(["t00001"], with_vectors=True)[0].audio_vector is None
    assert store.count(TrackFilter(has_audio=True)) == 1
    # A condition on an audio feature leaves metadata-only tracks out.
    assert store.count(TrackFilter(tempo_bpm=Range(0, 1000))) == 1
    hits = store.query(AUDIO_VECTOR, random_blocks(rng), TrackFilter(), 10, 0, [])
    assert [h.stored.track.metadata.track_id for h in hits] == ["t00002"]


def test_delete_removes_and_reports_absence(store: VectorStore) -> None:
    fill(store, 3)
    assert store.delete("t00001") is True
    assert store.delete("t00001") is False
    assert store.get(["t00000", "t00001", "t00002"]) and store.count(TrackFilter()) == 2


def test_filters_combine(store: VectorStore) -> None:
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


def test_scroll_pages_cover_everything_once(store: VectorStore) -> None:
    fill(store, 25)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.scroll(TrackFilter(), 7, cursor)
        seen += [t.metadata.track_id for t in page]
        if cursor is None:
            break
    assert sorted(seen) == [f"t{i:05d}" for i in range(25)]


def test_weighted_similarity_equals_brute_force(store: VectorStore) -> None:
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


def test_exclusions_and_offsets(store: VectorStore) -> None:
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


def test_text_vectors_rank_by_cosine(store: VectorStore) -> None:
    rng = np.random.default_rng(10)
    texts = {}
    for i in range(20):
        texts[f"t{i:05d}"] = random_text_vector(rng)
        store.upsert(make_track(i, rng), random_blocks(rng), texts[f"t{i:05d}"])
    target = texts["t00013"]
    hits = store.query(TEXT_VECTOR, target, TrackFilter(), 3, 0, [])
    assert hits[0].stored.track.metadata.track_id == "t00013"
    assert abs(hits[0].score - 1.0) < 1e-5


@pytest.mark.parametrize("engine", list(ON_DISK))
def test_embedded_store_survives_reopen(engine: str, tmp_path: pathlib.Path) -> None:
    store = ON_DISK[engine](str(tmp_path / "q"))
    fill(store, 5)
    store.close()
    reopened = ON_DISK[engine](str(tmp_path / "q"))
    assert reopened.count(TrackFilter()) == 5
    reopened.close()


def _clustered_text(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    v = centre + 0.3 * rng.normal(size=centre.size) / np.sqrt(centre.size)
    return (v / np.linalg.norm(v)).astype(np.float32)


def fill_text_clusters(store: VectorStore) -> dict[str, np.ndarray]:
    """Metadata-only tracks: t0-t19 around one text direction, t20-t39 around another,
    t40-t59 random."""
    rng = np.random.default_rng(11)
    near, far = random_text_vector(rng), random_text_vector(rng)
    texts = {}
    for i in range(60):
        text = (_clustered_text(rng, near) if i < 20 else _clustered_text(rng, far) if i < 40
                else random_text_vector(rng))
        texts[f"t{i:05d}"] = text
        store.upsert(make_track(i, rng, audio=False), None, text)
    return texts


def _ids(hits: list[ScoredTrack]) -> list[str]:
    return [h.stored.track.metadata.track_id for h in hits]


def test_text_recommend_ranks_near_positives_and_away_from_negatives(
        store: VectorStore) -> None:
    texts = fill_text_clusters(store)
    positive, negative = ["t00000", "t00001", "t00002"], ["t00020", "t00021"]
    hits = store.recommend(TEXT_VECTOR, positive, negative, TrackFilter(), 60, 0, [])
    ranked = _ids(hits)
    assert not set(ranked) & {*positive, *negative}  # the examples are left out
    assert set(ranked[:17]) == {f"t{i:05d}" for i in range(3, 20)}
    assert set(ranked[-18:]) == {f"t{i:05d}" for i in range(22, 40)}
    # Scores are the cosine to Qdrant's average_vector target, 2 * mean(pos) - mean(neg).
    target = (2 * np.mean([texts[t] for t in positive], axis=0)
              - np.mean([texts[t] for t in negative], axis=0))
    target /= np.linalg.norm(target)
    for hit in hits:
        assert abs(hit.score - float(texts[hit.stored.track.metadata.track_id] @ target)) < 1e-5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_text_recommend_matches_qdrant_recommend_with_and_without_filters(
        store: VectorStore) -> None:
    fill_text_clusters(store)
    # Qdrant's own recommend on the same points, in memory: the reference for every engine.
    qdrant = QdrantStore(QdrantClient(location=":memory:"), "qdrant-embedded")
    fill_text_clusters(qdrant)
    positive, negative, exclude = ["t00003", "t00044", "t00050"], ["t00025"], ["t00004"]
    reference = qdrant.client.query_points(
        COLLECTION, query=models.RecommendQuery(recommend=models.RecommendInput(
            positive=[point_id(t) for t in positive], negative=[point_id(t) for t in negative],
            strategy=models.RecommendStrategy.AVERAGE_VECTOR)),
        using=TEXT_VECTOR, limit=10, offset=5,
        query_filter=models.Filter(must_not=[models.HasIdCondition(has_id=[
            point_id(t) for t in exclude])])).points
    qdrant.close()
    # No filter conditions (a fast path in embedded mode), and a condition every track
    # meets (Qdrant's recommend with the filter).
    for filter in (TrackFilter(), TrackFilter(year=Range(0, 5000))):
        hits = store.recommend(TEXT_VECTOR, positive, negative, filter, 10, 5, exclude)
        assert [point_id(t) for t in _ids(hits)] == [str(p.id) for p in reference]
        assert np.allclose([h.score for h in hits], [p.score for p in reference], atol=1e-6)


def test_text_recommend_pages_filters_and_exclusions(store: VectorStore) -> None:
    fill_text_clusters(store)
    positive = ["t00000"]
    everything = _ids(store.recommend(TEXT_VECTOR, positive, [], TrackFilter(), 100, 0, []))
    assert len(everything) == 59
    pages = [_ids(store.recommend(TEXT_VECTOR, positive, [], TrackFilter(), 7, offset, []))
             for offset in range(0, 59, 7)]
    assert [t for page in pages for t in page] == everything
    excluded = everything[:3]
    again = _ids(store.recommend(TEXT_VECTOR, positive, [], TrackFilter(), 5, 0, excluded))
    assert again == everything[3:8]
    chorales = _ids(store.recommend(TEXT_VECTOR, positive, [], TrackFilter(tags=("chorale",)),
                                    100, 0, []))
    assert chorales == [t for t in everything if int(t[1:]) % 2]


def test_recommend_with_an_unknown_example_is_not_found(store: VectorStore) -> None:
    fill_text_clusters(store)
    for filter in (TrackFilter(), TrackFilter(tags=("chorale",))):
        with pytest.raises(NotFound, match="t99999"):
            store.recommend(TEXT_VECTOR, ["t00000"], ["t99999"], filter, 5, 0, [])


def test_loudness_and_brightness_ranges_filter_on_audio_features(store: VectorStore) -> None:
    fill(store, 60)
    rng = np.random.default_rng(12)
    store.upsert(make_track(100, rng, audio=False), None, random_text_vector(rng))
    everything = [s.track for s in store.get([f"t{i:05d}" for i in range(60)])]
    cases = [
        (TrackFilter(loudness_db=Range(-30, -15)),
         lambda f: -30 <= f.rms_db_mean <= -15),
        (TrackFilter(loudness_db=Range(None, -20)), lambda f: f.rms_db_mean <= -20),
        (TrackFilter(brightness_hz=Range(1500, None)),
         lambda f: f.spectral_centroid_hz >= 1500),
        (TrackFilter(loudness_db=Range(-35, -10), brightness_hz=Range(1000, 3000)),
         lambda f: -35 <= f.rms_db_mean <= -10 and 1000 <= f.spectral_centroid_hz <= 3000),
    ]
    for f, predicate in cases:
        expected = {t.metadata.track_id for t in everything if predicate(t.features)}
        tracks, _ = store.scroll(f, 100, None)
        assert {t.metadata.track_id for t in tracks} == expected
        assert 0 < len(expected) < 60  # neither vacuous nor everything
        assert store.count(f) == len(expected)
        hits = store.query(AUDIO_VECTOR, random_blocks(rng), f, 100, 0, [])
        assert {h.stored.track.metadata.track_id for h in hits} == expected
    # Any loudness condition leaves metadata-only tracks out.
    assert store.count(TrackFilter(loudness_db=Range(-1000, 1000))) == 60
