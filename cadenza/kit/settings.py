"""Settings common to every process, read once from CADENZA_<SERVICE>_* variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """What every server needs. Subclasses add their own fields and env prefix."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # Loopback by default so a dev machine exposes nothing; containers set 0.0.0.0.
    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    # Prometheus /metrics on its own HTTP port; 0 picks a free port, -1 turns it off.
    metrics_port: int = Field(default=9090, ge=-1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # How long in-flight calls may run on after SIGTERM before they are cancelled.
    grace_s: float = Field(default=10.0, ge=0)
    # Pause between turning health NOT_SERVING and refusing calls, so that load
    # balancers stop routing here first (a few seconds in Kubernetes, 0 locally).
    drain_delay_s: float = Field(default=0.0, ge=0)
    # Largest message accepted or sent (audio clips travel inline in search calls).
    max_message_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # Server-side bound on concurrently served calls; excess calls wait in gRPC's queue.
    max_concurrent_rpcs: int | None = Field(default=None, gt=0)
