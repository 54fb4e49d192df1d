"""Gateway settings, from CADENZA_GATEWAY_* environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from cadenza.kit.settings import ServerSettings


class GatewaySettings(ServerSettings):
    """The gateway's settings (environment prefix CADENZA_GATEWAY_)."""
    model_config = SettingsConfigDict(env_prefix="CADENZA_GATEWAY_", populate_by_name=True)

    port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9091, ge=-1, le=65535)
    retrieval_address: str = "127.0.0.1:50052"
    recommend_address: str = "127.0.0.1:50053"
    generate_address: str = "127.0.0.1:50054"
    # Keys required (from the store; `cadenza keys create`). Off only for an open mesh in
    # local development and tests: every call is then the "anonymous" tenant's.
    require_keys: bool = True
    # The store: PostgreSQL when DATABASE_URL is set (shared by every replica), else this
    # embedded SQLite file.
    database_url: str = Field(default="", validation_alias=AliasChoices(
        "DATABASE_URL", "CADENZA_GATEWAY_DATABASE_URL"))
    store_path: str = ".data/gateway/gateway.db"
    # Quota counters in Redis when REDIS_URL is set (shared by every replica), else in
    # process (per replica).
    redis_url: str = Field(default="", validation_alias=AliasChoices(
        "REDIS_URL", "CADENZA_GATEWAY_REDIS_URL"))
    # An admin secret to register at start (a mounted Kubernetes Secret), besides the one
    # `make up` prints once when the store has none.
    admin_key_file: str = ""
    # Where to write the first admin key when the gateway makes one (mode 0600).
    bootstrap_key_file: str = ""
    # How long a finished operation's result or error is kept.
    operation_retention_s: float = Field(default=7 * 86400.0, gt=0)
    # The longest an operation's backend call may run.
    operation_deadline_s: float = Field(default=3600.0, gt=0)
    # A replica's claim on an operation it runs, renewed every poll; when the replica
    # dies, another one resumes the operation once the claim has run out.
    operation_lease_s: float = Field(default=15.0, gt=0)
    operation_poll_s: float = Field(default=1.0, gt=0)
    # Operations one replica runs at once; more wait, queued, for any replica.
    max_running_operations: int = Field(default=16, ge=1)
    # Deadlines applied when the caller sets none, so no call can hang forever.
    default_unary_deadline_s: float = Field(default=30.0, gt=0)
    default_stream_deadline_s: float = Field(default=600.0, gt=0)
