"""Starts the retrieval service: `python -m services.retrieval`."""

from cadenza.kit.server import run
from services.retrieval.app import build_retrieval
from services.retrieval.settings import RetrievalSettings


def main() -> None:
    """Runs the service until SIGTERM."""
    settings = RetrievalSettings()
    run(settings, "retrieval", lambda: build_retrieval(settings))


if __name__ == "__main__":
    main()
