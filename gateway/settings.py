"""Gateway settings, from CADENZA_GATEWAY_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class GatewaySettings(ServerSettings):
    """The gateway's settings (environment prefix CADENZA_GATEWAY_)."""
    model_config = SettingsConfigDict(env_prefix="CADENZA_GATEWAY_")

    port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9091, ge=-1, le=65535)
    retrieval_address: str = "127.0.0.1:50052"
    recommend_address: str = "127.0.0.1:50053"
    generate_address: str = "127.0.0.1:50054"
    # API keys as "name=key,name=key"; empty means open access (local development).
    api_keys: str = ""
    # A file with one "name=key" per line (a mounted Kubernetes Secret); read at start.
    api_keys_file: str = ""
    # Calls per second each key may make (token bucket); 0 means no quota.
    quota_calls_per_s: float = Field(default=0.0, ge=0)
    quota_burst: int = Field(default=100, gt=0)
    # Deadlines applied when the caller sets none, so no call can hang forever.
    default_unary_deadline_s: float = Field(default=30.0, gt=0)
    default_stream_deadline_s: float = Field(default=600.0, gt=0)
