"""Generate settings, from CADENZA_GENERATE_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class GenerateSettings(ServerSettings):
    """The generate service's settings."""

    model_config = SettingsConfigDict(env_prefix="CADENZA_GENERATE_")

    port: int = Field(default=50054, ge=0, le=65535)
    metrics_port: int = Field(default=9094, ge=-1, le=65535)
    # This service's own data; only this process opens it.
    data_dir: str = ".data/generate"
    # Model folders (services/generate/README.md, section 3), one per model.
    models_dir: str = "models/generate"
    default_model: str = "cadenza-poly"
    # The text model GenerateText, WriteLyrics and DescribeMusic use by default (built by
    # `make text-llm`; the text RPCs answer FAILED_PRECONDITION while it is absent).
    default_text_model: str = "smollm2-135m-instruct"
    # The neural synthesiser RenderScore, TransferTimbre and RENDERER_NEURAL use by default
    # (trained by `make audio-model`; the audio RPCs answer FAILED_PRECONDITION without it).
    default_audio_model: str = "cadenza-ddsp"
    # The motif model GenerateCover and GenerateImage use by default (trained by `make
    # image-model`); its prompts are embedded by the MiniLM encoder in text_model_dir.
    default_image_model: str = "cadenza-motif"
    text_model_dir: str = "models/text"
    # Threads for the image RPCs' CPU work (composing and encoding covers).
    image_workers: int = Field(default=2, ge=1)
    # Threads for the audio RPCs' CPU work (pYIN, oscillators, encoding).
    audio_workers: int = Field(default=2, ge=1)
    # Where DescribeMusic reads catalog tracks (the retrieval service, or the gateway).
    retrieval_address: str = "127.0.0.1:50052"
    # "onnxruntime" runs the models in process; "triton" sends every decode call to a
    # Triton server at triton_url that serves the same model names.
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    triton_url: str = "localhost:8001"
    triton_timeout_s: float = Field(default=10.0, gt=0)
    # Empty: CUDA when this onnxruntime build has it, else CPU.
    onnx_providers: list[str] = Field(default_factory=list)
    onnx_intra_op_threads: int = Field(default=0, ge=0)
    # Generations at once; one more gets RESOURCE_EXHAUSTED.
    max_concurrent: int = Field(default=16, ge=1)
    # Decode steps of different generations share one backend call: at most max_batch,
    # waiting at most batch_wait_ms for the stragglers.
    max_batch: int = Field(default=16, ge=1)
    batch_wait_ms: float = Field(default=2.0, ge=0)
