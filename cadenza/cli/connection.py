"""How the CLI reaches the gateway: --target / CADENZA_TARGET, --api-key / CADENZA_API_KEY."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --target, --api-key and --timeout, shared by every command."""
    parser.add_argument("--target", default=os.environ.get("CADENZA_TARGET", DEFAULT_TARGET),
                        help="gateway address (env CADENZA_TARGET; default %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("CADENZA_API_KEY", ""),
                        help="API key, when the gateway requires one (env CADENZA_API_KEY)")
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
        return cls(grpc.insecure_channel(args.target, options=options), metadata, args.timeout)
