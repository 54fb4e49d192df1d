"""Which store the retrieval service opens: Edge by default, local mode when asked or
when the data directory already holds a local-mode catalog."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from services.retrieval.app import open_store
from services.retrieval.edge_store import EdgeStore
from services.retrieval.model import TrackFilter
from services.retrieval.qdrant_store import QdrantStore
from services.retrieval.settings import RetrievalSettings
from tests.retrieval.helpers import make_track, random_blocks, random_text_vector


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QDRANT_URL", "CADENZA_RETRIEVAL_QDRANT_URL",
                 "CADENZA_RETRIEVAL_EMBEDDED_ENGINE"):
        monkeypatch.delenv(name, raising=False)


def _settings(data_dir: pathlib.Path, **fields: str) -> RetrievalSettings:
    return RetrievalSettings(data_dir=str(data_dir), **fields)  # type: ignore[arg-type]


def test_an_empty_data_dir_gets_an_edge_store(tmp_path: pathlib.Path) -> None:
    store = open_store(_settings(tmp_path))
    assert isinstance(store, EdgeStore) and (tmp_path / "edge").is_dir()
    store.close()


def test_local_mode_is_selectable(tmp_path: pathlib.Path) -> None:
    store = open_store(_settings(tmp_path, embedded_engine="local"))
    assert isinstance(store, QdrantStore) and (tmp_path / "qdrant").is_dir()
    store.close()


def test_an_existing_local_mode_catalog_keeps_local_mode(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    old = QdrantStore.open(str(tmp_path / "qdrant"))
    old.upsert(make_track(1, rng), random_blocks(rng), random_text_vector(rng))
    old.close()
    store = open_store(_settings(tmp_path))
    assert isinstance(store, QdrantStore) and store.count(TrackFilter()) == 1
    assert not (tmp_path / "edge").exists()
    store.close()
