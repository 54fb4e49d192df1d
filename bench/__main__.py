"""Runs every benchmark and prints one table each: `python -m bench [name ...]`."""

from __future__ import annotations

import sys

from bench import audio, gateway_overhead, generate, image, recommend, retrieval, text

SUITES = {"gateway": gateway_overhead.run, "retrieval": retrieval.run,
          "recommend": recommend.run, "generate": generate.run, "text": text.run,
          "audio": audio.run, "image": image.run}


def main(names: list[str]) -> None:
    """Runs the named suites (every suite when none is named) and prints their tables."""
    unknown = set(names) - set(SUITES)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(SUITES)}")
    for name in names or list(SUITES):
        SUITES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
