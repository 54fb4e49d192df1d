"""Entry point of the `cadenza` command: one subcommand per module."""

from __future__ import annotations

import argparse
import sys

from cadenza.cli import (
    admin,
    audio,
    catalog,
    connection,
    events,
    generate,
    health,
    image,
    operations,
    recs,
    search,
    text,
    usage,
)


def build_parser() -> argparse.ArgumentParser:
    """The `cadenza` argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    connection.add_arguments(common)
    parser = argparse.ArgumentParser(prog="cadenza", description="Cadenza command-line client")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (health, catalog, search, events, recs, generate, text, audio, image,
                   admin, usage, operations):
        module.register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `cadenza` command."""
    args = build_parser().parse_args(argv)
    conn = connection.Connection.from_args(args)
    try:
        code = args.func(args, conn)
    except BrokenPipeError:  # output piped into `head` and the like
        code = 0
    except KeyboardInterrupt:
        code = 130
    finally:
        conn.channel.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
