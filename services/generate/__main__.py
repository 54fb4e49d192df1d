"""Starts the generate service: `python -m services.generate`."""

from cadenza.kit.server import run
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings


def main() -> None:
    """Loads settings and runs the generate server."""
    settings = GenerateSettings()
    run(settings, "generate", lambda: build_generate(settings))


if __name__ == "__main__":
    main()
