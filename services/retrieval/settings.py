"""Retrieval settings, from CADENZA_RETRIEVAL_* environment variables (and QDRANT_URL)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class RetrievalSettings(ServerSettings):
    """Retrieval's server, store, model and upload-limit settings."""

    model_config = SettingsConfigDict(env_prefix="CADENZA_RETRIEVAL_")

    port: int = Field(default=50052, ge=0, le=65535)
    metrics_port: int = Field(default=9092, ge=-1, le=65535)
    # Where the embedded store lives; only this process opens it.
    data_dir: str = ".data/retrieval"
    # The embedded engine when there is no server: "edge" (Qdrant Edge, the Qdrant engine
    # in process, HNSW and payload indexes; in <data_dir>/edge) or "local" (qdrant-client's
    # local mode, which filters point by point; in <data_dir>/qdrant). A data_dir that
    # already holds a local-mode collection keeps using local mode (see app._open_store).
    embedded_engine: Literal["edge", "local"] = "edge"
    # Build Edge's HNSW graphs at start-up, before the service turns ready: about two
    # minutes per 100k points written since the last build (123 s on 2 cores; nothing to
    # do below Edge's indexing threshold), within the startup probe's 300 s. Points
    # written after it are searched exactly (payload-indexed) until the next start:
    # 7-11 ms unfiltered at 100k instead of 3 ms.
    edge_optimize_on_start: bool = True
    # A Qdrant server (gRPC preferred) instead of the embedded store.
    qdrant_url: str = Field(default="", validation_alias=AliasChoices(
        "QDRANT_URL", "CADENZA_RETRIEVAL_QDRANT_URL"))
    qdrant_api_key: str = Field(default="", validation_alias=AliasChoices(
        "QDRANT_API_KEY", "CADENZA_RETRIEVAL_QDRANT_API_KEY"))
    # The exported sentence encoder (`make text-model`).
    text_model_dir: str = "models/text"
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_audio_duration_s: float = Field(default=900.0, gt=0)
    compute_workers: int = Field(default=1, ge=1)
