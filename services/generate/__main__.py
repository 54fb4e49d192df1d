"""Starts the generate service: `python -m services.generate`."""

from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import App, Binding, run
from services.generate.servicer import GenerateServicer
from services.generate.settings import GenerateSettings

SERVICE = "cadenza.generate.v1.GenerateService"


async def build() -> App:
    servicer = GenerateServicer()
    return App(bindings=[Binding(SERVICE, lambda server: generate_pb2_grpc.
                                 add_GenerateServiceServicer_to_server(servicer, server))])


def main() -> None:
    run(GenerateSettings(), "generate", build)


if __name__ == "__main__":
    main()
