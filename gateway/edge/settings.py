"""Edge settings, from CADENZA_EDGE_* environment variables."""

from __future__ import annotations

import pathlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The descriptor set of the public protos (`make protos`), read by the JSON transcoder.
DESCRIPTOR_SET = ROOT / "gateway" / "edge" / "api.pb"


class EdgeSettings(BaseSettings):
    """Where Envoy listens, what it fronts, and which edge features are on."""

    model_config = SettingsConfigDict(env_prefix="CADENZA_EDGE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    # Envoy's admin interface: /stats/prometheus is scraped there. Keep it private.
    metrics_port: int = Field(default=9901, ge=0, le=65535)
    retrieval_address: str = "127.0.0.1:50052"
    recommend_address: str = "127.0.0.1:50053"
    generate_address: str = "127.0.0.1:50054"
    # The gateway: GatewayService, health and reflection, and the control-plane
    # services Envoy calls (ext_authz, access-log service).
    gateway_address: str = "127.0.0.1:50051"
    # TLS on the public listener: a certificate chain and key (PEM). Empty: plaintext.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # mTLS to the backends: Envoy presents this client certificate and checks the
    # backends' certificates against the CA. Empty: plaintext inside the mesh.
    upstream_ca_file: str = ""
    upstream_cert_file: str = ""
    upstream_key_file: str = ""
    # Ask the gateway about every public call (ext_authz): API keys, scopes, quotas
    # shared by every replica, and the call's usage reservation. Costs a round trip to
    # the gateway per call; off only for an open mesh (no keys, local development).
    authz: bool = False
    # Stream an access-log entry of every call to the gateway (usage metering).
    metering: bool = True
    # How often Envoy flushes buffered access-log entries to the gateway.
    metering_flush_s: float = Field(default=0.5, gt=0)
    # Browser origins allowed to call (gRPC-Web, REST); "*" for any.
    cors_origins: str = "*"
    # Deadlines applied when the caller sets none, as the gateway applies them.
    default_unary_deadline_s: float = Field(default=30.0, gt=0)
    default_stream_deadline_s: float = Field(default=600.0, gt=0)
    max_message_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # Envoy worker threads; 0 means one per core.
    concurrency: int = Field(default=2, ge=0)
    descriptor_set: str = str(DESCRIPTOR_SET)
    # Where the rendered config and Envoy's log go.
    data_dir: str = ".data/edge"
    envoy_binary: str = "envoy"
    log_level: str = "warning"
