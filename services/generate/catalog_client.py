"""The catalog as the generate service sees it: one track's facts or cover drivers, from
retrieval's API.

The only place that speaks retrieval's protobufs; a failed call becomes the domain error
of its status code (`remote_error`), so an unknown id is NOT_FOUND naming the track.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio

from cadenza.kit.channels import open_channel
from cadenza.kit.errors import FailedPrecondition, remote_error
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.generate.image.factors import MusicFeatures
from services.generate.text.facts import MusicFacts

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TrackCover:
    """What a cover for a catalog track is drawn from."""

    features: MusicFeatures
    title: str
    artist: str
    words: str   # for the motif when the caller gives no prompt


def track_features(track: rpb.Track) -> MusicFeatures:
    """A catalog track's audio features as the cover reads them (the track has audio)."""
    f = track.features
    return MusicFeatures(
        key=f.key, mode=f.mode, chroma=tuple(f.chroma_mean),
        spectral_centroid_hz=f.spectral_centroid_hz, mfcc_mean=tuple(f.mfcc_mean),
        tempo_bpm=f.tempo_bpm, onset_rate_hz=f.onset_rate_hz, rms_db_mean=f.rms_db_mean,
        dynamic_range_db=f.dynamic_range_db)


def cover_words(track: rpb.Track) -> str:
    """Motif words a track's metadata suggests: its genre, first tag and instruments.

    Short on purpose: the sentence encoder averages what it reads, and a title or a long
    tag list pulls every track's embedding towards the same blur."""
    m = track.metadata
    parts = [m.genre, *m.tags[:1], *m.attributes.get("instrument", "").split(",")[:2]]
    seen: list[str] = []
    for part in (p.strip() for p in parts):
        if part and part.lower() not in (s.lower() for s in seen):
            seen.append(part)
    return ", ".join(seen)


class RetrievalTracks:
    """Reads a catalog track's metadata and audio features as MusicFacts."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub | None = None

    def _open(self) -> retrieval_pb2_grpc.RetrievalServiceAsyncStub:
        if self._stub is None:  # lazily: the channel must belong to the running loop
            self._channel = open_channel(self.address, [rpb.DESCRIPTOR.services_by_name[
                "RetrievalService"]])
            self._stub = retrieval_pb2_grpc.RetrievalServiceStub(self._channel)
        return self._stub

    async def _track(self, track_id: str) -> rpb.Track:
        try:
            reply = await self._open().GetTrack(rpb.GetTrackRequest(track_id=track_id),
                                                timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise remote_error("retrieval", error) from error
        return reply.track

    async def cover(self, track_id: str) -> TrackCover:
        """The track's audio features, title, artist and motif words; NotFound for an
        unknown id, FailedPrecondition for a track ingested without audio."""
        track = await self._track(track_id)
        if not track.HasField("features"):
            raise FailedPrecondition(f"track {track_id!r} has no audio features to draw a "
                                     "cover from; ingest its audio, or send the piece's midi")
        return TrackCover(track_features(track), track.metadata.title, track.metadata.artist,
                          cover_words(track))

    async def facts(self, track_id: str) -> MusicFacts:
        """The track's facts; NotFound for an unknown id."""
        track = await self._track(track_id)
        m, f = track.metadata, track.features
        has_audio = track.HasField("features")
        instrument = m.attributes.get("instrument", "")
        return MusicFacts(
            title=m.title, artist=m.artist, genre=m.genre, tags=tuple(m.tags),
            year=m.year if m.HasField("year") else None, description=m.description,
            key=f.key if has_audio else "", mode=f.mode if has_audio else "",
            tempo_bpm=f.tempo_bpm if has_audio else 0.0,
            loudness_db=f.rms_db_mean if has_audio else None,
            brightness_hz=f.spectral_centroid_hz if has_audio else None,
            instruments=tuple(i.strip().lower() for i in instrument.split(",") if i.strip()),
            duration_s=f.duration_s if has_audio else 0.0)

    async def close(self) -> None:
        """Closes the channel, if one was opened."""
        if self._channel is not None:
            await self._channel.close()
