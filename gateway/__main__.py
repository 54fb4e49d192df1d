"""Starts the gateway: `python -m gateway`."""

from cadenza.kit.server import run
from gateway.access import AccessInterceptor
from gateway.app import build_gateway
from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    run(settings, "gateway", lambda: build_gateway(settings),
        interceptors=[AccessInterceptor(settings)])


if __name__ == "__main__":
    main()
