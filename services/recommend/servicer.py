"""RecommendService: proto <-> domain conversion only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio

from cadenza.kit.validate import check_id
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend import convert, event_convert
from services.recommend.event_log import EventLog
from services.recommend.recommender import Recommender
from services.recommend.training import Trainer

Context = grpc.aio.ServicerContext


class RecommendServicer(recommend_pb2_grpc.RecommendServiceServicer):
    def __init__(self, events: EventLog, recommender: Recommender, trainer: Trainer) -> None:
        self.events = events
        self.recommender = recommender
        self.trainer = trainer

    # -- events ----------------------------------------------------------------------

    async def RecordEvent(self, request: pb.RecordEventRequest,
                          context: Context) -> pb.RecordEventResponse:
        duplicate = await self.events.record(event_convert.event_from_pb(request.event))
        return pb.RecordEventResponse(duplicate=duplicate)

    async def RecordEvents(self, request_iterator: AsyncIterator[pb.RecordEventsRequest],
                           context: Context) -> pb.RecordEventsResponse:
        result = await self.events.record_many(event_convert.events_from_pb(request_iterator))
        return event_convert.batch_result_to_pb(result)

    # -- recommendations -------------------------------------------------------------

    async def Recommend(self, request: pb.RecommendRequest,
                        context: Context) -> pb.RecommendResponse:
        query = convert.recommend_query_from_pb(request)
        result = await self.recommender.recommend(query)
        return convert.recommend_response_to_pb(result)

    async def SimilarTracks(self, request: pb.SimilarTracksRequest,
                            context: Context) -> pb.SimilarTracksResponse:
        track_id = check_id("track_id", request.track_id)
        limit = convert.limit_from_pb(request)
        items = await self.recommender.similar_tracks(track_id, limit)
        return pb.SimilarTracksResponse(items=[convert.item_to_pb(i) for i in items])

    async def SimilarUsers(self, request: pb.SimilarUsersRequest,
                           context: Context) -> pb.SimilarUsersResponse:
        user_id = check_id("user_id", request.user_id)
        limit = convert.limit_from_pb(request)
        users = await self.recommender.similar_users(user_id, limit)
        return pb.SimilarUsersResponse(users=[pb.SimilarUser(user_id=u, similarity=s)
                                              for u, s in users])

    # -- training --------------------------------------------------------------------

    async def TrainModel(self, request: pb.TrainModelRequest,
                         context: Context) -> pb.TrainModelResponse:
        run = await self.trainer.train(request.algorithm)
        return pb.TrainModelResponse(run=convert.run_to_pb(run))

    async def GetModelStatus(self, request: pb.GetModelStatusRequest,
                             context: Context) -> pb.GetModelStatusResponse:
        status = await self.trainer.status()
        return convert.status_to_pb(status, self.recommender.default_weights,
                                    await self.events.count())
