"""Wires the generate service: inference backend, model registry, composer, servicer."""

from __future__ import annotations

import asyncio
import pathlib

from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import App, Binding
from services.generate.audio.room import AudioRoom
from services.generate.catalog_client import RetrievalTracks
from services.generate.image.prompts import PromptEncoder
from services.generate.image.room import ImageRoom
from services.generate.inference.backend import InferenceBackend
from services.generate.music.composer import Composer
from services.generate.registry import ModelRegistry
from services.generate.servicer import GenerateServicer
from services.generate.settings import GenerateSettings
from services.generate.slots import Slots

SERVICE = "cadenza.generate.v1.GenerateService"


def make_backend(settings: GenerateSettings) -> InferenceBackend:
    """The inference backend the settings choose: ONNX Runtime or Triton."""
    if settings.backend == "triton":
        from services.generate.inference.triton_backend import TritonBackend
        return TritonBackend(settings.triton_url, settings.triton_timeout_s)
    from services.generate.inference.onnx_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(settings.onnx_providers, settings.onnx_intra_op_threads)


async def build_generate(settings: GenerateSettings) -> App:
    """Builds the generate service's gRPC binding, warm-up and close hooks."""
    registry = ModelRegistry(make_backend(settings), pathlib.Path(settings.models_dir),
                             settings.default_model, max_batch=settings.max_batch,
                             max_wait_s=settings.batch_wait_ms / 1000,
                             default_text_model=settings.default_text_model,
                             default_audio_model=settings.default_audio_model,
                             default_image_model=settings.default_image_model)
    slots = Slots(settings.max_concurrent)
    tracks = RetrievalTracks(settings.retrieval_address)
    audio = AudioRoom(settings.audio_workers)
    prompts = PromptEncoder(pathlib.Path(settings.text_model_dir))
    image = ImageRoom(tracks, prompts.get, settings.image_workers)
    servicer = GenerateServicer(Composer(registry, slots, audio), registry, slots, tracks,
                                audio, image)

    async def warmup() -> None:
        await registry.load_all()
        if registry.serves_audio:
            await audio.warm_up()
        if registry.serves_images:
            await asyncio.to_thread(prompts.load)

    async def close() -> None:
        await tracks.close()
        await audio.close()
        await image.close()
        await registry.close()

    return App(bindings=[Binding(SERVICE, lambda server: generate_pb2_grpc.
                                 add_GenerateServiceServicer_to_server(servicer, server))],
               warmup=warmup, close=close)
