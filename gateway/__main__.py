"""Starts the gateway: `python -m gateway`."""

from cadenza.kit.server import run
from gateway.access import Access
from gateway.app import build_gateway
from gateway.settings import GatewaySettings


def main() -> None:
    """Starts the gateway."""
    settings = GatewaySettings()
    access = Access()
    run(settings, "gateway", lambda: build_gateway(settings, access),
        interceptors=access.interceptors())


if __name__ == "__main__":
    main()
