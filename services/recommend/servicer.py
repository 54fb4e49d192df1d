"""RecommendService: proto <-> domain conversion only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio

from cadenza.kit.errors import InvalidArgument, Unimplemented
from cadenza.kit.validate import check_id, check_page_size, check_weights
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc

# Signal sources blended in R(x) = sum_i w_i r_i(x), with their default weights.
DEFAULT_WEIGHTS = {"collaborative": 0.5, "content": 0.3, "seeds": 0.1, "popularity": 0.1}
MAX_LIMIT = 100


def _not_yet(method: str, capability: str) -> Unimplemented:
    return Unimplemented(f"{method}: {capability} is not available yet "
                         "(it lands with the recommendation service, issue #4)")


def check_event(field: str, event: pb.Event) -> None:
    check_id(f"{field}.event_id", event.event_id)
    check_id(f"{field}.user_id", event.user_id)
    check_id(f"{field}.track_id", event.track_id)
    if event.kind == pb.EVENT_KIND_UNSPECIFIED:
        raise InvalidArgument(f"{field}.kind", "is required: PLAY, LIKE, DISLIKE, SKIP or "
                                               "PLAYLIST_ADD")


class RecommendServicer(recommend_pb2_grpc.RecommendServiceServicer):
    async def RecordEvent(self, request: pb.RecordEventRequest,
                          context: grpc.aio.ServicerContext) -> pb.RecordEventResponse:
        check_event("event", request.event)
        raise _not_yet("RecordEvent", "event storage")

    async def RecordEvents(self, request_iterator: AsyncIterator[pb.RecordEventsRequest],
                           context: grpc.aio.ServicerContext) -> pb.RecordEventsResponse:
        raise _not_yet("RecordEvents", "event storage")

    async def Recommend(self, request: pb.RecommendRequest,
                        context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        check_id("user_id", request.user_id)
        check_page_size("limit", request.limit, 20, MAX_LIMIT)
        check_weights("weights", request.weights, DEFAULT_WEIGHTS)
        raise _not_yet("Recommend", "personalised recommendation")

    async def SimilarTracks(self, request: pb.SimilarTracksRequest,
                            context: grpc.aio.ServicerContext) -> pb.SimilarTracksResponse:
        check_id("track_id", request.track_id)
        raise _not_yet("SimilarTracks", "similar tracks")

    async def SimilarUsers(self, request: pb.SimilarUsersRequest,
                           context: grpc.aio.ServicerContext) -> pb.SimilarUsersResponse:
        check_id("user_id", request.user_id)
        raise _not_yet("SimilarUsers", "similar users")

    async def TrainModel(self, request: pb.TrainModelRequest,
                         context: grpc.aio.ServicerContext) -> pb.TrainModelResponse:
        raise _not_yet("TrainModel", "collaborative model training")

    async def GetModelStatus(self, request: pb.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetModelStatusResponse:
        raise _not_yet("GetModelStatus", "collaborative model training")
