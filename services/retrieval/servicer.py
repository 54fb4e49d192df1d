"""RetrievalService: proto <-> domain conversion only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio

from cadenza.kit.errors import Unimplemented
from cadenza.kit.validate import check_id
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.feature_groups import FEATURE_GROUPS


def _not_yet(method: str, capability: str) -> Unimplemented:
    return Unimplemented(f"{method}: {capability} is not available yet "
                         "(it lands with the retrieval service, issue #3)")


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    async def IngestTrack(self, request_iterator: AsyncIterator[pb.IngestTrackRequest],
                          context: grpc.aio.ServicerContext) -> pb.IngestTrackResponse:
        raise _not_yet("IngestTrack", "catalogue ingest")

    async def GetTrack(self, request: pb.GetTrackRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetTrackResponse:
        check_id("track_id", request.track_id)
        raise _not_yet("GetTrack", "the catalogue")

    async def BatchGetTracks(self, request: pb.BatchGetTracksRequest,
                             context: grpc.aio.ServicerContext) -> pb.BatchGetTracksResponse:
        for i, track_id in enumerate(request.track_ids):
            check_id(f"track_ids[{i}]", track_id)
        raise _not_yet("BatchGetTracks", "the catalogue")

    async def DeleteTrack(self, request: pb.DeleteTrackRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteTrackResponse:
        check_id("track_id", request.track_id)
        raise _not_yet("DeleteTrack", "the catalogue")

    async def ListTracks(self, request: pb.ListTracksRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListTracksResponse:
        raise _not_yet("ListTracks", "the catalogue")

    async def SearchTracks(self, request: pb.SearchTracksRequest,
                           context: grpc.aio.ServicerContext) -> pb.SearchTracksResponse:
        raise _not_yet("SearchTracks", "catalogue search")

    async def ListFeatureGroups(
        self, request: pb.ListFeatureGroupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFeatureGroupsResponse:
        return pb.ListFeatureGroupsResponse(groups=[
            pb.FeatureGroup(name=g.name, description=g.description,
                            default_weight=g.default_weight, dimensions=g.dimensions)
            for g in FEATURE_GROUPS
        ])

    async def GetCatalogStats(self, request: pb.GetCatalogStatsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetCatalogStatsResponse:
        raise _not_yet("GetCatalogStats", "the catalogue")
