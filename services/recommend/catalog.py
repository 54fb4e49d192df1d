"""The catalog as the recommend service sees it: the retrieval service's gRPC API.

This adapter is the only place that speaks retrieval's protobufs; failures of the remote
call become domain errors here (`remote_error`), so callers see UNAVAILABLE or
DEADLINE_EXCEEDED naming retrieval, never a raw RpcError.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import grpc.aio

from cadenza.kit.channels import open_channel
from cadenza.kit.errors import remote_error
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc

BATCH_GET_MAX = 1000  # retrieval's BatchGetTracks limit
SEARCH_MAX = 100  # retrieval's SearchTracks page size limit
LIST_MAX = 500  # retrieval's ListTracks page size limit
Request = TypeVar("Request")
Response = TypeVar("Response")


@dataclass(frozen=True)
class CatalogTrack:
    """A catalog track as recommend uses it: ids, names, tags and audio features."""

    track_id: str
    title: str
    artist: str
    tags: tuple[str, ...] = ()
    # The audio features recommend targets use (tempo_bpm, key, mode, loudness_db,
    # brightness_hz, duration_s); empty for metadata-only tracks.
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Bounds:
    """An optional closed range; None leaves that side open."""

    min: float | None = None
    max: float | None = None

    def given(self) -> bool:
        """True when either side is set."""
        return self.min is not None or self.max is not None


@dataclass(frozen=True)
class CandidateFilter:
    """Hard conditions on candidates (the min_/max_ targets, seed artists and tags)."""

    artists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tempo_bpm: Bounds = Bounds()
    loudness_db: Bounds = Bounds()
    brightness_hz: Bounds = Bounds()
    duration_s: Bounds = Bounds()


@dataclass(frozen=True)
class Scored:
    """A track and its similarity score from a catalog search."""

    track: CatalogTrack
    score: float


@dataclass(frozen=True)
class FeatureGroup:
    """A feature group's block of the audio vector and its default weight (retrieval's)."""

    name: str
    dimensions: int
    default_weight: float


@dataclass(frozen=True)
class CatalogVectors:
    """Every track with its stored vectors (audio empty without audio), at a revision."""

    revision: str
    rows: list[tuple[CatalogTrack, list[float], list[float]]]
    groups: list[FeatureGroup]


class Catalog(Protocol):
    """What recommend needs from the catalog; `RetrievalCatalog` implements it."""

    async def missing(self, track_ids: list[str]) -> set[str]:
        """The ids that are not catalog tracks."""

    async def tracks(self, track_ids: list[str]) -> dict[str, CatalogTrack]:
        """The tracks that exist, by id."""

    async def like_examples(self, positive: list[str], negative: list[str],
                            where: CandidateFilter, limit: int) -> list[Scored]:
        """Tracks like the positives and unlike the negatives (which are left out)."""

    async def search_text(self, text: str, where: CandidateFilter, limit: int) -> list[Scored]:
        """Tracks whose text matches the query by meaning."""
        ...

    async def matching(self, where: CandidateFilter, limit: int) -> list[CatalogTrack]:
        """Tracks that satisfy the filter, in storage order."""


class RetrievalCatalog:
    """The Catalog port over the retrieval service's gRPC API, with a cache of tracks."""

    def __init__(self, address: str, cache_size: int = 100_000) -> None:
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub | None = None
        # Track metadata changes rarely and events name the same tracks again and again.
        self._cache: OrderedDict[str, CatalogTrack] = OrderedDict()
        self._cache_size = cache_size

    @property
    def stub(self) -> retrieval_pb2_grpc.RetrievalServiceAsyncStub:
        """The retrieval stub, on a channel opened at first use."""
        if self._stub is None:  # opened lazily: the channel must belong to the running loop
            self._channel = open_channel(self.address, [rpb.DESCRIPTOR.services_by_name[
                "RetrievalService"]])
            self._stub = retrieval_pb2_grpc.RetrievalServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        """Closes the channel, if one was opened."""
        if self._channel is not None:
            await self._channel.close()

    async def missing(self, track_ids: list[str]) -> set[str]:
        """The ids that are not catalog tracks."""
        found = await self.tracks(track_ids)
        return {t for t in track_ids if t not in found}

    async def tracks(self, track_ids: list[str]) -> dict[str, CatalogTrack]:
        """The tracks that exist, by id (cached ones without a call)."""
        found = {t: self._cache[t] for t in track_ids if t in self._cache}
        wanted = list(dict.fromkeys(t for t in track_ids if t not in found))
        for start in range(0, len(wanted), BATCH_GET_MAX):
            reply = await self._call(self.stub.BatchGetTracks, rpb.BatchGetTracksRequest(
                track_ids=wanted[start:start + BATCH_GET_MAX]))
            for track in reply.tracks:
                found[track.metadata.track_id] = self._remember(_from_pb(track))
        return found

    async def like_examples(self, positive: list[str], negative: list[str],
                            where: CandidateFilter, limit: int) -> list[Scored]:
        """Tracks like the positives and unlike the negatives (which are left out)."""
        request = rpb.SearchTracksRequest(
            examples=rpb.TrackExamples(positive_track_ids=positive,
                                       negative_track_ids=negative),
            filter=_filter_to_pb(where), page_size=min(limit, SEARCH_MAX))
        return await self._search(request)

    async def search_text(self, text: str, where: CandidateFilter, limit: int) -> list[Scored]:
        """Tracks whose text matches the query by meaning."""
        return await self._search(rpb.SearchTracksRequest(
            text=text, filter=_filter_to_pb(where), page_size=min(limit, SEARCH_MAX)))

    async def matching(self, where: CandidateFilter, limit: int) -> list[CatalogTrack]:
        """Tracks that satisfy the filter, in storage order."""
        reply = await self._call(self.stub.SearchTracks, rpb.SearchTracksRequest(
            filter=_filter_to_pb(where), page_size=min(limit, SEARCH_MAX)))
        return [self._remember(_from_pb(hit.track)) for hit in reply.hits]

    async def revision(self) -> str:
        """Retrieval's catalogue revision (GetCatalogStats)."""
        reply = await self._call(self.stub.GetCatalogStats, rpb.GetCatalogStatsRequest())
        return f"{reply.revision}/{reply.track_count}"

    async def vectors(self, revision: str) -> CatalogVectors:
        """Every track with its stored vectors, paged through ListTracks, labelled with
        the `revision` read before the first page (a write during the paging moves the
        revision, so the next check copies again)."""
        groups = (await self._call(self.stub.ListFeatureGroups,
                                   rpb.ListFeatureGroupsRequest())).groups
        rows: list[tuple[CatalogTrack, list[float], list[float]]] = []
        token = ""
        while True:
            reply = await self._call(self.stub.ListTracks, rpb.ListTracksRequest(
                page_size=LIST_MAX, page_token=token, include_vectors=True))
            # The copy reads every track's metadata anyway: remembering it spares the
            # first calls that name a track a BatchGetTracks round trip for its title.
            rows.extend((self._remember(_from_pb(t)), list(t.vectors.audio),
                         list(t.vectors.text)) for t in reply.tracks)
            token = reply.next_page_token
            if not token:
                break
        return CatalogVectors(revision, rows, [
            FeatureGroup(g.name, g.dimensions, g.default_weight) for g in groups])

    async def _search(self, request: rpb.SearchTracksRequest) -> list[Scored]:
        reply = await self._call(self.stub.SearchTracks, request)
        return [Scored(self._remember(_from_pb(hit.track)), hit.score) for hit in reply.hits]

    async def _call(self, method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
                    request: Request) -> Response:
        """One call; a failed call becomes the domain error for its status code."""
        try:
            return await method(request)
        except grpc.aio.AioRpcError as error:
            raise remote_error(f"retrieval at {self.address}", error) from error

    def _remember(self, track: CatalogTrack) -> CatalogTrack:
        self._cache[track.track_id] = track
        self._cache.move_to_end(track.track_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return track


def _from_pb(track: rpb.Track) -> CatalogTrack:
    meta = track.metadata
    features: dict[str, float] = {}
    if track.HasField("features"):
        f = track.features
        features = {"tempo_bpm": f.tempo_bpm, "loudness_db": f.rms_db_mean,
                    "brightness_hz": f.spectral_centroid_hz, "duration_s": f.duration_s,
                    "key": float(_PITCH_CLASS.get(f.key, -1)),
                    "mode": 1.0 if f.mode == "major" else 0.0}
    return CatalogTrack(meta.track_id, meta.title, meta.artist, tuple(meta.tags), features)


def _range(bounds: Bounds) -> rpb.FloatRange:
    out = rpb.FloatRange()
    if bounds.min is not None:
        out.min = bounds.min
    if bounds.max is not None:
        out.max = bounds.max
    return out


def _filter_to_pb(where: CandidateFilter) -> rpb.TrackFilter:
    out = rpb.TrackFilter(artists=where.artists, tags=where.tags)
    for name in ("tempo_bpm", "loudness_db", "brightness_hz", "duration_s"):
        bounds = getattr(where, name)
        if bounds.given():
            getattr(out, name).CopyFrom(_range(bounds))
    return out


_PITCH_CLASS = {name: i for i, names in enumerate(
    (("C", "B#"), ("C#", "Db"), ("D",), ("D#", "Eb"), ("E", "Fb"), ("F", "E#"),
     ("F#", "Gb"), ("G",), ("G#", "Ab"), ("A",), ("A#", "Bb"), ("B", "Cb"))) for name in names}
