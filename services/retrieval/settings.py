"""Retrieval settings, from CADENZA_RETRIEVAL_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class RetrievalSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="CADENZA_RETRIEVAL_")

    port: int = Field(default=50052, ge=0, le=65535)
    metrics_port: int = Field(default=9092, ge=-1, le=65535)
    # Where the embedded store lives; only this process opens it.
    data_dir: str = ".data/retrieval"
