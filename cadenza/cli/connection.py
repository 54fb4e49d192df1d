"""How the CLI reaches the edge: --target / CADENZA_TARGET, --api-key / CADENZA_API_KEY,
TLS trusting --ca-file / CADENZA_CA_FILE (or `make up`'s development CA), --insecure."""

from __future__ import annotations

import argparse
import os
import pathlib
from dataclasses import dataclass

import grpc

DEFAULT_TARGET = "127.0.0.1:8443"
# The gateway's own port (plaintext, inside the mesh): for tools that run beside it.
GATEWAY_TARGET = "127.0.0.1:50051"
# `make up` writes its development CA here; the CLI trusts it when no CA is named.
DEV_CA = pathlib.Path(__file__).resolve().parents[2] / ".run" / "tls" / "ca.pem"
# ... and the first admin key, which the CLI sends when no key is named.
DEV_KEY = pathlib.Path(__file__).resolve().parents[2] / ".run" / "admin.key"


def default_key() -> str:
    """CADENZA_API_KEY, else the admin key `make up` made, else "" (no key)."""
    if "CADENZA_API_KEY" in os.environ:
        return os.environ["CADENZA_API_KEY"]
    return DEV_KEY.read_text().strip() if DEV_KEY.exists() else ""


def _default_ca() -> str:
    if "CADENZA_CA_FILE" in os.environ:
        return os.environ["CADENZA_CA_FILE"]
    return str(DEV_CA) if DEV_CA.exists() else ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --target, --api-key and --timeout, shared by every command."""
    parser.add_argument("--target", default=os.environ.get("CADENZA_TARGET", DEFAULT_TARGET),
                        help="gateway address (env CADENZA_TARGET; default %(default)s)")
    parser.add_argument("--api-key", default=default_key(),
                        help="API key (env CADENZA_API_KEY; default: the admin key `make up` "
                             "made, if present)")
    parser.add_argument("--ca-file", default=_default_ca(),
                        help="CA certificate (PEM) to trust for TLS (env CADENZA_CA_FILE; "
                             "default: make up's development CA if present, else the "
                             "system's roots)")
    parser.add_argument("--insecure", action="store_true",
                        default=os.environ.get("CADENZA_INSECURE", "") not in ("", "0"),
                        help="plaintext, no TLS (env CADENZA_INSECURE=1)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="deadline per call in seconds (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


@dataclass
class Connection:
    """A channel to the gateway with the caller's metadata and timeout."""
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    timeout_s: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        """Opens the connection the common arguments describe."""
        metadata = (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if args.insecure:
            return cls(grpc.insecure_channel(args.target, options=options), metadata,
                       args.timeout)
        if args.ca_file and not pathlib.Path(args.ca_file).is_file():
            raise SystemExit(f"no CA certificate at {args.ca_file}: run `make up`, pass "
                             "--ca-file, or --insecure for a plaintext edge")
        roots = pathlib.Path(args.ca_file).read_bytes() if args.ca_file else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        return cls(grpc.secure_channel(args.target, credentials, options=options), metadata,
                   args.timeout)
