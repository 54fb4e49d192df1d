import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_PLAY: _ClassVar[EventKind]
    EVENT_KIND_LIKE: _ClassVar[EventKind]
    EVENT_KIND_DISLIKE: _ClassVar[EventKind]
    EVENT_KIND_SKIP: _ClassVar[EventKind]
    EVENT_KIND_PLAYLIST_ADD: _ClassVar[EventKind]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_PLAY: EventKind
EVENT_KIND_LIKE: EventKind
EVENT_KIND_DISLIKE: EventKind
EVENT_KIND_SKIP: EventKind
EVENT_KIND_PLAYLIST_ADD: EventKind

class Event(_message.Message):
    __slots__ = ("event_id", "user_id", "track_id", "kind", "occurred_at", "listened_ms", "completion", "playlist_id", "count")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    LISTENED_MS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PLAYLIST_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    track_id: str
    kind: EventKind
    occurred_at: _timestamp_pb2.Timestamp
    listened_ms: int
    completion: float
    playlist_id: str
    count: int
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., track_id: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., listened_ms: _Optional[int] = ..., completion: _Optional[float] = ..., playlist_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class RecordEventRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class RecordEventResponse(_message.Message):
    __slots__ = ("duplicate",)
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    def __init__(self, duplicate: bool = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("index", "event_id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("stored", "duplicates", "rejected")
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    def __init__(self, stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ...) -> None: ...

class Seeds(_message.Message):
    __slots__ = ("track_ids", "artists", "tags", "text")
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    ARTISTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    artists: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    text: str
    def __init__(self, track_ids: _Optional[_Iterable[str]] = ..., artists: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ...) -> None: ...

class AudioTargets(_message.Message):
    __slots__ = ("min_tempo_bpm", "max_tempo_bpm", "target_tempo_bpm", "target_key", "target_mode", "min_loudness_db", "max_loudness_db", "target_loudness_db", "min_brightness_hz", "max_brightness_hz", "target_brightness_hz", "min_duration_s", "max_duration_s", "target_duration_s")
    MIN_TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    MAX_TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    TARGET_TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    TARGET_KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_LOUDNESS_DB_FIELD_NUMBER: _ClassVar[int]
    MAX_LOUDNESS_DB_FIELD_NUMBER: _ClassVar[int]
    TARGET_LOUDNESS_DB_FIELD_NUMBER: _ClassVar[int]
    MIN_BRIGHTNESS_HZ_FIELD_NUMBER: _ClassVar[int]
    MAX_BRIGHTNESS_HZ_FIELD_NUMBER: _ClassVar[int]
    TARGET_BRIGHTNESS_HZ_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    TARGET_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    min_tempo_bpm: float
    max_tempo_bpm: float
    target_tempo_bpm: float
    target_key: int
    target_mode: int
    min_loudness_db: float
    max_loudness_db: float
    target_loudness_db: float
    min_brightness_hz: float
    max_brightness_hz: float
    target_brightness_hz: float
    min_duration_s: float
    max_duration_s: float
    target_duration_s: float
    def __init__(self, min_tempo_bpm: _Optional[float] = ..., max_tempo_bpm: _Optional[float] = ..., target_tempo_bpm: _Optional[float] = ..., target_key: _Optional[int] = ..., target_mode: _Optional[int] = ..., min_loudness_db: _Optional[float] = ..., max_loudness_db: _Optional[float] = ..., target_loudness_db: _Optional[float] = ..., min_brightness_hz: _Optional[float] = ..., max_brightness_hz: _Optional[float] = ..., target_brightness_hz: _Optional[float] = ..., min_duration_s: _Optional[float] = ..., max_duration_s: _Optional[float] = ..., target_duration_s: _Optional[float] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "limit", "weights", "seeds", "targets", "max_per_artist", "include_heard")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_ARTIST_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HEARD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    weights: _containers.ScalarMap[str, float]
    seeds: Seeds
    targets: AudioTargets
    max_per_artist: int
    include_heard: bool
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., weights: _Optional[_Mapping[str, float]] = ..., seeds: _Optional[_Union[Seeds, _Mapping]] = ..., targets: _Optional[_Union[AudioTargets, _Mapping]] = ..., max_per_artist: _Optional[int] = ..., include_heard: bool = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("track_id", "title", "artist", "score", "contributions", "reason")
    class ContributionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    title: str
    artist: str
    score: float
    contributions: _containers.ScalarMap[str, float]
    reason: str
    def __init__(self, track_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., score: _Optional[float] = ..., contributions: _Optional[_Mapping[str, float]] = ..., reason: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "weights", "model_version", "cold_start")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    weights: _containers.ScalarMap[str, float]
    model_version: str
    cold_start: bool
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., weights: _Optional[_Mapping[str, float]] = ..., model_version: _Optional[str] = ..., cold_start: bool = ...) -> None: ...

class SimilarTracksRequest(_message.Message):
    __slots__ = ("track_id", "limit")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    limit: int
    def __init__(self, track_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SimilarTracksResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ...) -> None: ...

class SimilarUsersRequest(_message.Message):
    __slots__ = ("user_id", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SimilarUser(_message.Message):
    __slots__ = ("user_id", "similarity")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    similarity: float
    def __init__(self, user_id: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class SimilarUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[SimilarUser]
    def __init__(self, users: _Optional[_Iterable[_Union[SimilarUser, _Mapping]]] = ...) -> None: ...

class TrainModelRequest(_message.Message):
    __slots__ = ("algorithm",)
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    def __init__(self, algorithm: _Optional[str] = ...) -> None: ...

class TrainingRun(_message.Message):
    __slots__ = ("run_id", "algorithm", "state", "started_at_unix_s", "duration_s", "events_used", "users", "items", "model_version", "error")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    EVENTS_USED_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    algorithm: str
    state: str
    started_at_unix_s: float
    duration_s: float
    events_used: int
    users: int
    items: int
    model_version: str
    error: str
    def __init__(self, run_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., state: _Optional[str] = ..., started_at_unix_s: _Optional[float] = ..., duration_s: _Optional[float] = ..., events_used: _Optional[int] = ..., users: _Optional[int] = ..., items: _Optional[int] = ..., model_version: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class TrainModelResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelStatusResponse(_message.Message):
    __slots__ = ("model_version", "latest_run", "default_weights", "events_stored")
    class DefaultWeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_RUN_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_STORED_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    latest_run: TrainingRun
    default_weights: _containers.ScalarMap[str, float]
    events_stored: int
    def __init__(self, model_version: _Optional[str] = ..., latest_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., default_weights: _Optional[_Mapping[str, float]] = ..., events_stored: _Optional[int] = ...) -> None: ...
