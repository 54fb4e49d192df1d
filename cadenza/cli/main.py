"""Entry point of the `cadenza` command: one subcommand per module."""

from __future__ import annotations

import argparse
import sys

from cadenza.cli import connection, health


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    connection.add_arguments(common)
    parser = argparse.ArgumentParser(prog="cadenza", description="Cadenza command-line client")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (health,):
        module.register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    conn = connection.Connection.from_args(args)
    try:
        sys.exit(args.func(args, conn))
    finally:
        conn.channel.close()


if __name__ == "__main__":
    main()
