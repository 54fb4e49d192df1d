"""GenerateService: proto <-> domain conversion only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.errors import InvalidArgument, Unimplemented


def _not_yet(method: str, capability: str) -> Unimplemented:
    return Unimplemented(f"{method}: {capability} is not available yet "
                         "(it lands with the generation service, issue #5)")


def check_sampling(sampling: pb.Sampling) -> None:
    if sampling.HasField("temperature") and not sampling.temperature > 0:
        raise InvalidArgument("sampling.temperature",
                              f"must be > 0, got {sampling.temperature}")
    if sampling.HasField("top_p") and not 0 < sampling.top_p <= 1:
        raise InvalidArgument("sampling.top_p", f"must be in (0, 1], got {sampling.top_p}")
    if sampling.top_k < 0:
        raise InvalidArgument("sampling.top_k", f"must be >= 0, got {sampling.top_k}")


class GenerateServicer(generate_pb2_grpc.GenerateServiceServicer):
    async def Generate(self, request: pb.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        check_sampling(request.sampling)
        raise _not_yet("Generate", "music generation")
        yield  # pragma: no cover  (makes this an async generator, like the real one)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        raise _not_yet("ListModels", "the model registry")
