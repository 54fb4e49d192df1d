"""Starts the gateway: `python -m gateway`."""

from cadenza.kit.server import run
from gateway.access import access_interceptors
from gateway.app import build_gateway
from gateway.settings import GatewaySettings


def main() -> None:
    """Starts the gateway."""
    settings = GatewaySettings()
    run(settings, "gateway", lambda: build_gateway(settings),
        interceptors=access_interceptors(settings))


if __name__ == "__main__":
    main()
