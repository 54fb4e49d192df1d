"""RecommendService: proto <-> domain conversion only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc.aio

from cadenza.kit.usage import report_usage
from cadenza.kit.validate import check_id
from cadenza.recommend.v1 import recommend_pb2 as pb
from cadenza.recommend.v1 import recommend_pb2_grpc
from services.recommend import convert, event_convert
from services.recommend.event_log import EventLog
from services.recommend.recommender import Recommender
from services.recommend.training import Trainer

# A string: grpc.aio.ServicerContext is generic only in its type stubs.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

# The name the recommender is metered and listed under (its algorithms are one model).
RECOMMENDER = "cadenza-recommender"


class RecommendServicer(recommend_pb2_grpc.RecommendServiceServicer):
    """The RecommendService RPCs over the event log, recommender and trainer."""

    def __init__(self, events: EventLog, recommender: Recommender, trainer: Trainer) -> None:
        self.events = events
        self.recommender = recommender
        self.trainer = trainer

    # -- events ----------------------------------------------------------------------

    async def RecordEvent(self, request: pb.RecordEventRequest,
                          context: Context) -> pb.RecordEventResponse:
        """Stores one event durably."""
        duplicate = await self.events.record(event_convert.event_from_pb(request.event))
        return pb.RecordEventResponse(duplicate=duplicate)

    async def RecordEvents(self, request_iterator: AsyncIterator[pb.RecordEventsRequest],
                           context: Context) -> pb.RecordEventsResponse:
        """Stores a stream of events; bad ones are rejected, the rest stored."""
        result = await self.events.record_many(event_convert.events_from_pb(request_iterator))
        return event_convert.batch_result_to_pb(result)

    # -- recommendations -------------------------------------------------------------

    async def Recommend(self, request: pb.RecommendRequest,
                        context: Context) -> pb.RecommendResponse:
        """A personalised list for the user."""
        query = convert.recommend_query_from_pb(request)
        result = await self.recommender.recommend(query)
        response = convert.recommend_response_to_pb(result)
        report_usage(context, RECOMMENDER, len(response.items))
        return response

    async def SimilarTracks(self, request: pb.SimilarTracksRequest,
                            context: Context) -> pb.SimilarTracksResponse:
        """Tracks like the given one."""
        track_id = check_id("track_id", request.track_id)
        limit = convert.limit_from_pb(request)
        items = await self.recommender.similar_tracks(track_id, limit)
        report_usage(context, RECOMMENDER, len(items))
        return pb.SimilarTracksResponse(items=[convert.item_to_pb(i) for i in items])

    async def SimilarUsers(self, request: pb.SimilarUsersRequest,
                           context: Context) -> pb.SimilarUsersResponse:
        """Users with similar taste."""
        user_id = check_id("user_id", request.user_id)
        limit = convert.limit_from_pb(request)
        users = await self.recommender.similar_users(user_id, limit)
        report_usage(context, RECOMMENDER, len(users))
        return pb.SimilarUsersResponse(users=[pb.SimilarUser(user_id=u, similarity=s)
                                              for u, s in users])

    # -- training --------------------------------------------------------------------

    async def TrainModel(self, request: pb.TrainModelRequest,
                         context: Context) -> pb.TrainModelResponse:
        """Starts a training run; with wait, returns it finished (a cancelled call
        cancels the run)."""
        run = await self.trainer.train(request.algorithm)
        if request.wait:
            try:
                run = await self.trainer.wait() or run
            except asyncio.CancelledError:
                await self.trainer.cancel(run.run_id)
                raise
        return pb.TrainModelResponse(run=convert.run_to_pb(run))

    async def GetModelStatus(self, request: pb.GetModelStatusRequest,
                             context: Context) -> pb.GetModelStatusResponse:
        """The serving model, the latest run, the default weights and the event count."""
        status = await self.trainer.status()
        return convert.status_to_pb(status, self.recommender.default_weights,
                                    await self.events.count())
