"""The catalog as the generate service sees it: one track's facts, from retrieval's API.

The only place that speaks retrieval's protobufs; a failed call becomes the domain error
of its status code (`remote_error`), so an unknown id is NOT_FOUND naming the track.
"""

from __future__ import annotations

import grpc.aio

from cadenza.kit.channels import open_channel
from cadenza.kit.errors import remote_error
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.generate.text.facts import MusicFacts

TIMEOUT_S = 10.0


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

    async def facts(self, track_id: str) -> MusicFacts:
        """The track's facts; NotFound for an unknown id."""
        try:
            reply = await self._open().GetTrack(rpb.GetTrackRequest(track_id=track_id),
                                                timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise remote_error("retrieval", error) from error
        m, f = reply.track.metadata, reply.track.features
        has_audio = reply.track.HasField("features")
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
