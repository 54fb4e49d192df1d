"""Starts the retrieval service: `python -m services.retrieval`."""

from cadenza.kit.server import App, Binding, run
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.servicer import RetrievalServicer
from services.retrieval.settings import RetrievalSettings

SERVICE = "cadenza.retrieval.v1.RetrievalService"


async def build() -> App:
    servicer = RetrievalServicer()
    return App(bindings=[Binding(SERVICE, lambda server: retrieval_pb2_grpc.
                                 add_RetrievalServiceServicer_to_server(servicer, server))])


def main() -> None:
    run(RetrievalSettings(), "retrieval", build)


if __name__ == "__main__":
    main()
