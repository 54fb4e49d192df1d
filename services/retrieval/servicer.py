"""RetrievalService: proto <-> domain conversion only; the logic lives in Catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc.aio

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_page_size
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.catalog import Catalog, SearchPage
from services.retrieval.convert import (
    example_space_from_pb,
    filter_from_pb,
    hit_to_pb,
    metadata_from_pb,
    stored_to_pb,
    track_to_pb,
)
from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.paging import (
    cursor_from_token,
    cursor_token,
    offset_from_token,
    offset_token,
)
from services.retrieval.similarity import resolve_weights

Context = grpc.aio.ServicerContext

MAX_CHUNK_BYTES = 1024 * 1024
# (default, maximum) page sizes; 0 asks for the default.
LIST_PAGE_SIZE = (50, 500)
SEARCH_PAGE_SIZE = (10, 100)


Paged = TypeVar("Paged", pb.ListTracksRequest, pb.SearchTracksRequest)


def _query_of(request: Paged) -> bytes:
    """What a page token is bound to: the request but for its paging fields (the page size
    may change between pages)."""
    query = type(request)()
    query.CopyFrom(request)
    query.ClearField("page_token")
    query.ClearField("page_size")
    return query.SerializeToString(deterministic=True)


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """cadenza.retrieval.v1.RetrievalService over a Catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def IngestTrack(self, request_iterator: AsyncIterator[pb.IngestTrackRequest],
                          context: Context[pb.IngestTrackRequest, pb.IngestTrackResponse],
                          ) -> pb.IngestTrackResponse:
        """Assembles the streamed header and audio chunks and ingests the track."""
        header: pb.IngestHeader | None = None
        chunks: list[bytes] = []
        size = 0
        async for part in request_iterator:
            if part.HasField("header"):
                if header is not None:
                    raise InvalidArgument("header", "sent twice; send it once, first")
                header = part.header
            elif part.HasField("audio_chunk"):
                if header is None:
                    raise InvalidArgument("header", "must be the first message of the stream")
                if len(part.audio_chunk) > MAX_CHUNK_BYTES:
                    raise InvalidArgument("audio_chunk", "is over 1 MiB; send smaller chunks")
                size += len(part.audio_chunk)
                self.catalog.check_upload_size(size)  # stop reading early when too big
                chunks.append(part.audio_chunk)
        if header is None:
            raise InvalidArgument("header", "is missing; the stream was empty")
        audio = b"".join(chunks) if chunks else None
        track, replaced = await self.catalog.ingest(metadata_from_pb(header.metadata), audio)
        return pb.IngestTrackResponse(track=track_to_pb(track), replaced=replaced)

    async def GetTrack(self, request: pb.GetTrackRequest,
                       context: Context[pb.GetTrackRequest, pb.GetTrackResponse],
                       ) -> pb.GetTrackResponse:
        """Returns one track by id."""
        return pb.GetTrackResponse(track=track_to_pb(await self.catalog.get(request.track_id)))

    async def BatchGetTracks(self, request: pb.BatchGetTracksRequest,
                             context: Context[pb.BatchGetTracksRequest,
                                              pb.BatchGetTracksResponse],
                             ) -> pb.BatchGetTracksResponse:
        """Returns the tracks that exist and lists the missing ids."""
        tracks, missing = await self.catalog.batch_get(list(request.track_ids))
        return pb.BatchGetTracksResponse(tracks=[track_to_pb(t) for t in tracks],
                                         missing_track_ids=missing)

    async def DeleteTrack(self, request: pb.DeleteTrackRequest,
                          context: Context[pb.DeleteTrackRequest, pb.DeleteTrackResponse],
                          ) -> pb.DeleteTrackResponse:
        """Removes one track by id."""
        await self.catalog.delete(request.track_id)
        return pb.DeleteTrackResponse()

    async def ListTracks(self, request: pb.ListTracksRequest,
                         context: Context[pb.ListTracksRequest, pb.ListTracksResponse],
                         ) -> pb.ListTracksResponse:
        """Pages through the tracks matching a filter, in storage order."""
        limit = check_page_size("page_size", request.page_size, *LIST_PAGE_SIZE)
        query = _query_of(request)
        filter, after = filter_from_pb(request.filter), cursor_from_token(request.page_token,
                                                                          query)
        if request.include_vectors:
            stored, cursor = await self.catalog.list_with_vectors(filter, limit, after)
            tracks = [stored_to_pb(s) for s in stored]
        else:
            found, cursor = await self.catalog.list_tracks(filter, limit, after)
            tracks = [track_to_pb(t) for t in found]
        return pb.ListTracksResponse(tracks=tracks, next_page_token=cursor_token(cursor, query))

    async def SearchTracks(self, request: pb.SearchTracksRequest,
                           context: Context[pb.SearchTracksRequest, pb.SearchTracksResponse],
                           ) -> pb.SearchTracksResponse:
        """Ranks tracks by text, an example track, a clip or example sets; or filters only."""
        limit = check_page_size("page_size", request.page_size, *SEARCH_PAGE_SIZE)
        filter = filter_from_pb(request.filter)
        exclude = list(request.exclude_track_ids)
        mode = request.WhichOneof("query")
        query = _query_of(request)
        if mode is None:
            tracks, cursor = await self.catalog.search_metadata(
                filter, limit, cursor_from_token(request.page_token, query))
            return pb.SearchTracksResponse(
                hits=[pb.SearchHit(track=track_to_pb(t)) for t in tracks],
                next_page_token=cursor_token(cursor, query))
        offset = offset_from_token(request.page_token, query)
        page: SearchPage
        if mode == "text":
            page = await self.catalog.search_text(request.text, filter, limit, offset, exclude)
        else:
            # Checked before the mode's own fields, so a bad weight is reported first.
            weights = resolve_weights(dict(request.weights))
            if mode == "like_track_id":
                page = await self.catalog.search_like_track(
                    request.like_track_id, filter, weights, limit, offset, exclude)
            elif mode == "like_audio":
                page = await self.catalog.search_like_audio(
                    request.like_audio.data, filter, weights, limit, offset, exclude)
            else:
                page = await self.catalog.search_examples(
                    list(request.examples.positive_track_ids),
                    list(request.examples.negative_track_ids),
                    example_space_from_pb(request.examples.space), filter, weights, limit,
                    offset, exclude)
        return pb.SearchTracksResponse(hits=[hit_to_pb(h) for h in page.hits],
                                       weights=page.weights,
                                       next_page_token=offset_token(page.next_offset, query))

    async def ListFeatureGroups(self, request: pb.ListFeatureGroupsRequest,
                                context: Context[pb.ListFeatureGroupsRequest,
                                                 pb.ListFeatureGroupsResponse],
                                ) -> pb.ListFeatureGroupsResponse:
        """Lists the feature groups that search weights range over."""
        return pb.ListFeatureGroupsResponse(groups=[
            pb.FeatureGroup(name=g.name, description=g.description,
                            default_weight=g.default_weight, dimensions=g.dimensions)
            for g in FEATURE_GROUPS
        ])

    async def GetCatalogStats(self, request: pb.GetCatalogStatsRequest,
                              context: Context[pb.GetCatalogStatsRequest,
                                               pb.GetCatalogStatsResponse],
                              ) -> pb.GetCatalogStatsResponse:
        """Counts the catalog's tracks and those with audio, and names the store."""
        total, with_audio = await self.catalog.stats()
        return pb.GetCatalogStatsResponse(track_count=total, tracks_with_audio=with_audio,
                                          store=self.catalog.store.kind,
                                          revision=self.catalog.revision)
