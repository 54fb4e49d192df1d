"""Protobuf <-> domain conversion for the retrieval service, with request validation."""

from __future__ import annotations

import dataclasses
import math

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_enum, shown
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from services.retrieval.model import (
    AudioFeatures,
    ExampleSpace,
    Hit,
    Range,
    Track,
    TrackFilter,
    TrackMetadata,
)
from services.retrieval.store import StoredTrack

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
_SPACES: dict[int, ExampleSpace] = {pb.EXAMPLE_SPACE_AUTO: ExampleSpace.AUTO,
                                     pb.EXAMPLE_SPACE_AUDIO: ExampleSpace.AUDIO,
                                     pb.EXAMPLE_SPACE_TEXT: ExampleSpace.TEXT}
_SPACE_LABELS = {int(n): pb.ExampleSpace.Name(n) for n in pb.ExampleSpace.values()}


def metadata_from_pb(m: pb.TrackMetadata) -> TrackMetadata:
    """Domain metadata from the message; an unset year is None."""
    return TrackMetadata(
        track_id=m.track_id, title=m.title, artist=m.artist, album=m.album,
        year=m.year if m.HasField("year") else None, genre=m.genre, tags=tuple(m.tags),
        description=m.description, attributes=dict(m.attributes),
        source_sha256=m.source_sha256)


def metadata_to_pb(m: TrackMetadata) -> pb.TrackMetadata:
    """The metadata message; year is left unset when None."""
    message = pb.TrackMetadata(
        track_id=m.track_id, title=m.title, artist=m.artist, album=m.album, genre=m.genre,
        tags=list(m.tags), description=m.description, attributes=m.attributes,
        source_sha256=m.source_sha256)
    if m.year is not None:
        message.year = m.year
    return message


def features_to_pb(f: AudioFeatures) -> pb.AudioFeatures:
    """The AudioFeatures message, field for field."""
    return pb.AudioFeatures(**dataclasses.asdict(f))


def track_to_pb(t: Track) -> pb.Track:
    """The Track message; features only when the track has audio."""
    message = pb.Track(metadata=metadata_to_pb(t.metadata),
                       ingested_at_unix_s=t.ingested_at_unix_s)
    if t.features is not None:
        message.features.CopyFrom(features_to_pb(t.features))
    return message


def stored_to_pb(s: StoredTrack) -> pb.Track:
    """The Track message with the stored vectors (Track.vectors)."""
    message = track_to_pb(s.track)
    if s.audio_vector is not None:
        message.vectors.audio.extend(s.audio_vector.tolist())
    if s.text_vector is not None:
        message.vectors.text.extend(s.text_vector.tolist())
    return message


def hit_to_pb(h: Hit) -> pb.SearchHit:
    """The SearchHit message with its per-group contributions."""
    return pb.SearchHit(track=track_to_pb(h.track), score=h.score,
                        contributions=h.contributions)


def _range(field: str, r: pb.FloatRange | pb.IntRange) -> Range:
    low = r.min if r.HasField("min") else None
    high = r.max if r.HasField("max") else None
    for name, value in (("min", low), ("max", high)):
        if value is not None and not math.isfinite(value):
            raise InvalidArgument(f"{field}.{name}", "must be a finite number")
    if low is not None and high is not None and low > high:
        raise InvalidArgument(field, f"min ({low:g}) is greater than max ({high:g})")
    return Range(low, high)


def normalise_key(field: str, name: str) -> str:
    """A pitch-class name in sharps ("Bb" -> "A#"); InvalidArgument for anything else."""
    key = _FLATS.get(name.strip(), name.strip())
    key = key[:1].upper() + key[1:]
    if key not in PITCH_CLASSES:
        raise InvalidArgument(field, f"{shown(name)} is not a pitch class; use one of "
                                     f"{', '.join(PITCH_CLASSES)} (or flats like Bb)")
    return key


def filter_from_pb(f: pb.TrackFilter) -> TrackFilter:
    """The domain filter, with ranges, keys and mode checked."""
    mode = f.mode.strip().lower()
    if mode not in ("", "major", "minor"):
        raise InvalidArgument("filter.mode", f"{shown(f.mode)}: use 'major' or 'minor'")
    return TrackFilter(
        artists=tuple(f.artists), albums=tuple(f.albums), genres=tuple(f.genres),
        tags=tuple(f.tags), year=_range("filter.year", f.year),
        tempo_bpm=_range("filter.tempo_bpm", f.tempo_bpm),
        duration_s=_range("filter.duration_s", f.duration_s),
        keys=tuple(normalise_key(f"filter.keys[{i}]", k) for i, k in enumerate(f.keys)),
        mode=mode, has_audio=f.has_audio,
        loudness_db=_range("filter.loudness_db", f.loudness_db),
        brightness_hz=_range("filter.brightness_hz", f.brightness_hz))


def example_space_from_pb(space: pb.ExampleSpace.ValueType) -> ExampleSpace:
    """The domain ExampleSpace; InvalidArgument for a value this server does not know."""
    return check_enum("examples.space", space, _SPACES, _SPACE_LABELS)
