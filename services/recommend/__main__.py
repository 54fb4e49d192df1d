"""Starts the recommend service: `python -m services.recommend`."""

from cadenza.kit.server import App, Binding, run
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend.servicer import RecommendServicer
from services.recommend.settings import RecommendSettings

SERVICE = "cadenza.recommend.v1.RecommendService"


async def build() -> App:
    servicer = RecommendServicer()
    return App(bindings=[Binding(SERVICE, lambda server: recommend_pb2_grpc.
                                 add_RecommendServiceServicer_to_server(servicer, server))])


def main() -> None:
    run(RecommendSettings(), "recommend", build)


if __name__ == "__main__":
    main()
