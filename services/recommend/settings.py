"""Recommend settings, from CADENZA_RECOMMEND_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class RecommendSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="CADENZA_RECOMMEND_")

    port: int = Field(default=50053, ge=0, le=65535)
    metrics_port: int = Field(default=9093, ge=-1, le=65535)
    # This service's own data; only this process opens it.
    data_dir: str = ".data/recommend"
