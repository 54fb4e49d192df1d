"""Starts the recommend service: `python -m services.recommend`."""

from cadenza.kit.server import run
from services.recommend.app import build_recommend
from services.recommend.settings import RecommendSettings


def main() -> None:
    """Runs the recommend service with settings from the environment."""
    settings = RecommendSettings()
    run(settings, "recommend", lambda: build_recommend(settings))


if __name__ == "__main__":
    main()
