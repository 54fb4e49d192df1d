"""The Triton model repository in deploy/ parses as Triton's ModelConfig and fits the model."""

from __future__ import annotations

import json
import pathlib

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.generate.inference.backend import INPUT_NAMES, OUTPUT_NAMES
from services.generate.inference.triton_repo import DEPLOY_REPOSITORY, render_config, write_entry
from tests.generate.tiny_model import write_tiny_model

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVED_MODEL = ROOT / "models" / "generate" / "cadenza-poly"
COMMITTED = DEPLOY_REPOSITORY / "cadenza-poly" / "config.pbtxt"
TRITON_TYPES = {onnx.TensorProto.INT64: model_config_pb2.TYPE_INT64,
                onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32}


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def assert_fits_onnx(config: model_config_pb2.ModelConfig, onnx_path: pathlib.Path) -> None:
    """Same names and types; dims are the graph's without its leading batch axis."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph

    def from_graph(values: object) -> dict[str, tuple[int, list[int]]]:
        described = {}
        for value in values:  # type: ignore[attr-defined]
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            assert not tensor.shape.dim[0].HasField("dim_value"), f"{value.name}: fixed batch"
            described[value.name] = (TRITON_TYPES[tensor.elem_type], dims[1:])
        return described

    def from_config(tensors: object) -> dict[str, tuple[int, list[int]]]:
        return {t.name: (t.data_type, list(t.dims)) for t in tensors}  # type: ignore[attr-defined]

    assert from_config(config.input) == from_graph(graph.input)
    assert from_config(config.output) == from_graph(graph.output)


def test_committed_config_is_an_onnxruntime_gpu_model_with_dynamic_batching() -> None:
    config = parse(COMMITTED.read_text())
    assert config.name == "cadenza-poly"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 1
    assert config.HasField("dynamic_batching")
    assert 0 < config.dynamic_batching.max_queue_delay_microseconds <= 10_000
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)]
    assert tuple(t.name for t in config.input) == INPUT_NAMES
    assert tuple(t.name for t in config.output) == OUTPUT_NAMES


def test_rendered_config_fits_an_exported_graph(tmp_path: pathlib.Path) -> None:
    model_dir = write_tiny_model(tmp_path / "tiny-poly")
    config = parse(render_config(json.loads((model_dir / "model.json").read_text())))
    assert config.name == "tiny-poly"
    assert_fits_onnx(config, model_dir / "model.onnx")


def test_rendered_config_notices_a_graph_of_another_size(tmp_path: pathlib.Path) -> None:
    model_dir = write_tiny_model(tmp_path / "tiny-poly")
    model_json = json.loads((model_dir / "model.json").read_text())
    config = parse(render_config({**model_json, "n_heads": model_json["n_heads"] + 1}))
    with pytest.raises(AssertionError):
        assert_fits_onnx(config, model_dir / "model.onnx")


def test_write_entry_puts_the_graph_in_version_folder_one(tmp_path: pathlib.Path) -> None:
    model_dir = write_tiny_model(tmp_path / "model")
    entry = write_entry(model_dir, tmp_path / "repository")
    assert entry == tmp_path / "repository" / "tiny-poly"
    assert (entry / "1" / "model.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()
    linked = write_entry(model_dir, tmp_path / "linked", link=True)
    assert (linked / "1" / "model.onnx").resolve() == (model_dir / "model.onnx").resolve()
    assert parse((entry / "config.pbtxt").read_text()).name == "tiny-poly"


@pytest.mark.skipif(not (SERVED_MODEL / "model.onnx").exists(),
                    reason="models/generate/cadenza-poly is not trained yet (`make models`)")
def test_committed_config_is_what_triton_repo_writes_for_the_served_model() -> None:
    model_json = json.loads((SERVED_MODEL / "model.json").read_text())
    assert COMMITTED.read_text() == render_config(model_json), \
        "stale: run `python services/generate/inference/triton_repo.py --config-only`"
    assert_fits_onnx(parse(COMMITTED.read_text()), SERVED_MODEL / "model.onnx")


TEXT_MODEL = ROOT / "models" / "generate" / "smollm2-135m-instruct"
TEXT_COMMITTED = DEPLOY_REPOSITORY / "smollm2-135m-instruct" / "config.pbtxt"


@pytest.mark.skipif(not (TEXT_MODEL / "model.onnx").exists(),
                    reason="the text model is not converted yet (`make text-llm`)")
def test_the_text_models_committed_config_fits_its_converted_graph() -> None:
    model_json = json.loads((TEXT_MODEL / "model.json").read_text())
    assert TEXT_COMMITTED.read_text() == render_config(model_json), \
        "stale: run `python services/generate/inference/triton_repo.py --model-dir " \
        "models/generate/smollm2-135m-instruct --config-only`"
    config = parse(TEXT_COMMITTED.read_text())
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)]
    assert_fits_onnx(config, TEXT_MODEL / "model.onnx")


AUDIO_MODEL = ROOT / "models" / "generate" / "cadenza-ddsp"
AUDIO_COMMITTED = DEPLOY_REPOSITORY / "cadenza-ddsp" / "config.pbtxt"


@pytest.mark.skipif(not (AUDIO_MODEL / "model.onnx").exists(),
                    reason="the synthesiser is not trained yet (`make audio-model`)")
def test_the_synthesisers_committed_config_fits_its_exported_graph() -> None:
    model_json = json.loads((AUDIO_MODEL / "model.json").read_text())
    assert AUDIO_COMMITTED.read_text() == render_config(model_json), \
        "stale: run `python services/generate/inference/triton_repo.py --model-dir " \
        "models/generate/cadenza-ddsp --config-only`"
    config = parse(AUDIO_COMMITTED.read_text())
    assert config.max_batch_size > 1 and config.HasField("dynamic_batching")
    assert tuple(t.name for t in config.input) == ("f0_hz", "loudness_db", "timbre")
    assert tuple(t.name for t in config.output) == ("amplitudes", "noise")
    assert_fits_onnx(config, AUDIO_MODEL / "model.onnx")


IMAGE_MODEL = ROOT / "models" / "generate" / "cadenza-motif"
IMAGE_COMMITTED = DEPLOY_REPOSITORY / "cadenza-motif" / "config.pbtxt"


@pytest.mark.skipif(not (IMAGE_MODEL / "model.onnx").exists(),
                    reason="the image model is not trained yet (`make image-model`)")
def test_the_image_models_committed_config_fits_its_exported_graph() -> None:
    model_json = json.loads((IMAGE_MODEL / "model.json").read_text())
    assert IMAGE_COMMITTED.read_text() == render_config(model_json), \
        "stale: run `python services/generate/inference/triton_repo.py --model-dir " \
        "models/generate/cadenza-motif --config-only`"
    config = parse(IMAGE_COMMITTED.read_text())
    # Guided sampling of 8 images sends 16 rows per call.
    assert config.max_batch_size >= 16 and config.HasField("dynamic_batching")
    assert tuple(t.name for t in config.input) == ("x", "t", "text")
    assert tuple(t.name for t in config.output) == ("eps",)
    assert_fits_onnx(config, IMAGE_MODEL / "model.onnx")
