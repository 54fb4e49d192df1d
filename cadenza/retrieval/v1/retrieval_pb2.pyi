from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExampleSpace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXAMPLE_SPACE_AUTO: _ClassVar[ExampleSpace]
    EXAMPLE_SPACE_AUDIO: _ClassVar[ExampleSpace]
    EXAMPLE_SPACE_TEXT: _ClassVar[ExampleSpace]
EXAMPLE_SPACE_AUTO: ExampleSpace
EXAMPLE_SPACE_AUDIO: ExampleSpace
EXAMPLE_SPACE_TEXT: ExampleSpace

class TrackMetadata(_message.Message):
    __slots__ = ("track_id", "title", "artist", "album", "year", "genre", "tags", "description", "attributes", "source_sha256")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    title: str
    artist: str
    album: str
    year: int
    genre: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    description: str
    attributes: _containers.ScalarMap[str, str]
    source_sha256: str
    def __init__(self, track_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., album: _Optional[str] = ..., year: _Optional[int] = ..., genre: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., source_sha256: _Optional[str] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("metadata", "features", "ingested_at_unix_s")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    metadata: TrackMetadata
    features: AudioFeatures
    ingested_at_unix_s: float
    def __init__(self, metadata: _Optional[_Union[TrackMetadata, _Mapping]] = ..., features: _Optional[_Union[AudioFeatures, _Mapping]] = ..., ingested_at_unix_s: _Optional[float] = ...) -> None: ...

class AudioFeatures(_message.Message):
    __slots__ = ("duration_s", "mfcc_mean", "mfcc_std", "chroma_mean", "tempo_bpm", "beat_strength", "onset_rate_hz", "rms_db_mean", "dynamic_range_db", "spectral_centroid_hz", "spectral_rolloff_hz", "spectral_contrast_mean", "f0_median_hz", "f0_std_semitones", "voiced_fraction", "key", "mode", "key_confidence")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MFCC_MEAN_FIELD_NUMBER: _ClassVar[int]
    MFCC_STD_FIELD_NUMBER: _ClassVar[int]
    CHROMA_MEAN_FIELD_NUMBER: _ClassVar[int]
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    BEAT_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    ONSET_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    RMS_DB_MEAN_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_RANGE_DB_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_CENTROID_HZ_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_ROLLOFF_HZ_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_CONTRAST_MEAN_FIELD_NUMBER: _ClassVar[int]
    F0_MEDIAN_HZ_FIELD_NUMBER: _ClassVar[int]
    F0_STD_SEMITONES_FIELD_NUMBER: _ClassVar[int]
    VOICED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    KEY_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    mfcc_mean: _containers.RepeatedScalarFieldContainer[float]
    mfcc_std: _containers.RepeatedScalarFieldContainer[float]
    chroma_mean: _containers.RepeatedScalarFieldContainer[float]
    tempo_bpm: float
    beat_strength: float
    onset_rate_hz: float
    rms_db_mean: float
    dynamic_range_db: float
    spectral_centroid_hz: float
    spectral_rolloff_hz: float
    spectral_contrast_mean: _containers.RepeatedScalarFieldContainer[float]
    f0_median_hz: float
    f0_std_semitones: float
    voiced_fraction: float
    key: str
    mode: str
    key_confidence: float
    def __init__(self, duration_s: _Optional[float] = ..., mfcc_mean: _Optional[_Iterable[float]] = ..., mfcc_std: _Optional[_Iterable[float]] = ..., chroma_mean: _Optional[_Iterable[float]] = ..., tempo_bpm: _Optional[float] = ..., beat_strength: _Optional[float] = ..., onset_rate_hz: _Optional[float] = ..., rms_db_mean: _Optional[float] = ..., dynamic_range_db: _Optional[float] = ..., spectral_centroid_hz: _Optional[float] = ..., spectral_rolloff_hz: _Optional[float] = ..., spectral_contrast_mean: _Optional[_Iterable[float]] = ..., f0_median_hz: _Optional[float] = ..., f0_std_semitones: _Optional[float] = ..., voiced_fraction: _Optional[float] = ..., key: _Optional[str] = ..., mode: _Optional[str] = ..., key_confidence: _Optional[float] = ...) -> None: ...

class IngestTrackRequest(_message.Message):
    __slots__ = ("header", "audio_chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: IngestHeader
    audio_chunk: bytes
    def __init__(self, header: _Optional[_Union[IngestHeader, _Mapping]] = ..., audio_chunk: _Optional[bytes] = ...) -> None: ...

class IngestHeader(_message.Message):
    __slots__ = ("metadata", "audio_format")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    metadata: TrackMetadata
    audio_format: str
    def __init__(self, metadata: _Optional[_Union[TrackMetadata, _Mapping]] = ..., audio_format: _Optional[str] = ...) -> None: ...

class IngestTrackResponse(_message.Message):
    __slots__ = ("track", "replaced")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    track: Track
    replaced: bool
    def __init__(self, track: _Optional[_Union[Track, _Mapping]] = ..., replaced: bool = ...) -> None: ...

class GetTrackRequest(_message.Message):
    __slots__ = ("track_id",)
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    def __init__(self, track_id: _Optional[str] = ...) -> None: ...

class GetTrackResponse(_message.Message):
    __slots__ = ("track",)
    TRACK_FIELD_NUMBER: _ClassVar[int]
    track: Track
    def __init__(self, track: _Optional[_Union[Track, _Mapping]] = ...) -> None: ...

class BatchGetTracksRequest(_message.Message):
    __slots__ = ("track_ids",)
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, track_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetTracksResponse(_message.Message):
    __slots__ = ("tracks", "missing_track_ids")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    MISSING_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    missing_track_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., missing_track_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteTrackRequest(_message.Message):
    __slots__ = ("track_id",)
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    def __init__(self, track_id: _Optional[str] = ...) -> None: ...

class DeleteTrackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTracksRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: TrackFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[TrackFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTracksResponse(_message.Message):
    __slots__ = ("tracks", "next_page_token")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    next_page_token: str
    def __init__(self, tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TrackFilter(_message.Message):
    __slots__ = ("artists", "albums", "genres", "tags", "year", "tempo_bpm", "duration_s", "keys", "mode", "has_audio", "loudness_db", "brightness_hz")
    ARTISTS_FIELD_NUMBER: _ClassVar[int]
    ALBUMS_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_DB_FIELD_NUMBER: _ClassVar[int]
    BRIGHTNESS_HZ_FIELD_NUMBER: _ClassVar[int]
    artists: _containers.RepeatedScalarFieldContainer[str]
    albums: _containers.RepeatedScalarFieldContainer[str]
    genres: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    year: IntRange
    tempo_bpm: FloatRange
    duration_s: FloatRange
    keys: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    has_audio: bool
    loudness_db: FloatRange
    brightness_hz: FloatRange
    def __init__(self, artists: _Optional[_Iterable[str]] = ..., albums: _Optional[_Iterable[str]] = ..., genres: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., year: _Optional[_Union[IntRange, _Mapping]] = ..., tempo_bpm: _Optional[_Union[FloatRange, _Mapping]] = ..., duration_s: _Optional[_Union[FloatRange, _Mapping]] = ..., keys: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ..., has_audio: bool = ..., loudness_db: _Optional[_Union[FloatRange, _Mapping]] = ..., brightness_hz: _Optional[_Union[FloatRange, _Mapping]] = ...) -> None: ...

class IntRange(_message.Message):
    __slots__ = ("min", "max")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ...) -> None: ...

class FloatRange(_message.Message):
    __slots__ = ("min", "max")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class TrackExamples(_message.Message):
    __slots__ = ("positive_track_ids", "negative_track_ids", "space")
    POSITIVE_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    positive_track_ids: _containers.RepeatedScalarFieldContainer[str]
    negative_track_ids: _containers.RepeatedScalarFieldContainer[str]
    space: ExampleSpace
    def __init__(self, positive_track_ids: _Optional[_Iterable[str]] = ..., negative_track_ids: _Optional[_Iterable[str]] = ..., space: _Optional[_Union[ExampleSpace, str]] = ...) -> None: ...

class AudioClip(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: str
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[str] = ...) -> None: ...

class SearchTracksRequest(_message.Message):
    __slots__ = ("text", "like_track_id", "like_audio", "examples", "filter", "weights", "page_size", "page_token", "exclude_track_ids")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LIKE_TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    LIKE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    like_track_id: str
    like_audio: AudioClip
    examples: TrackExamples
    filter: TrackFilter
    weights: _containers.ScalarMap[str, float]
    page_size: int
    page_token: str
    exclude_track_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., like_track_id: _Optional[str] = ..., like_audio: _Optional[_Union[AudioClip, _Mapping]] = ..., examples: _Optional[_Union[TrackExamples, _Mapping]] = ..., filter: _Optional[_Union[TrackFilter, _Mapping]] = ..., weights: _Optional[_Mapping[str, float]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., exclude_track_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("track", "score", "contributions")
    class ContributionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TRACK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    track: Track
    score: float
    contributions: _containers.ScalarMap[str, float]
    def __init__(self, track: _Optional[_Union[Track, _Mapping]] = ..., score: _Optional[float] = ..., contributions: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SearchTracksResponse(_message.Message):
    __slots__ = ("hits", "next_page_token", "weights")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    next_page_token: str
    weights: _containers.ScalarMap[str, float]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., weights: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListFeatureGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FeatureGroup(_message.Message):
    __slots__ = ("name", "description", "default_weight", "dimensions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    default_weight: float
    dimensions: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., default_weight: _Optional[float] = ..., dimensions: _Optional[int] = ...) -> None: ...

class ListFeatureGroupsResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[FeatureGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[FeatureGroup, _Mapping]]] = ...) -> None: ...

class GetCatalogStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCatalogStatsResponse(_message.Message):
    __slots__ = ("track_count", "tracks_with_audio", "store")
    TRACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRACKS_WITH_AUDIO_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    track_count: int
    tracks_with_audio: int
    store: str
    def __init__(self, track_count: _Optional[int] = ..., tracks_with_audio: _Optional[int] = ..., store: _Optional[str] = ...) -> None: ...
