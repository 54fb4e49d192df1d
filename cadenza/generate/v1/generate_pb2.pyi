from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_MODE_UNSPECIFIED: _ClassVar[GenerationMode]
    GENERATION_MODE_FROM_SCRATCH: _ClassVar[GenerationMode]
    GENERATION_MODE_CONTINUE: _ClassVar[GenerationMode]
    GENERATION_MODE_HARMONIZE: _ClassVar[GenerationMode]

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
GENERATION_MODE_UNSPECIFIED: GenerationMode
GENERATION_MODE_FROM_SCRATCH: GenerationMode
GENERATION_MODE_CONTINUE: GenerationMode
GENERATION_MODE_HARMONIZE: GenerationMode
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "mode", "primer_midi", "bars", "seconds", "tempo_bpm", "key", "time_signature", "programs", "sampling", "seed", "audio_format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PRIMER_MIDI_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TIME_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROGRAMS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    mode: GenerationMode
    primer_midi: bytes
    bars: int
    seconds: float
    tempo_bpm: float
    key: str
    time_signature: str
    programs: _containers.RepeatedScalarFieldContainer[int]
    sampling: Sampling
    seed: int
    audio_format: AudioFormat
    def __init__(self, model: _Optional[str] = ..., mode: _Optional[_Union[GenerationMode, str]] = ..., primer_midi: _Optional[bytes] = ..., bars: _Optional[int] = ..., seconds: _Optional[float] = ..., tempo_bpm: _Optional[float] = ..., key: _Optional[str] = ..., time_signature: _Optional[str] = ..., programs: _Optional[_Iterable[int]] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., seed: _Optional[int] = ..., audio_format: _Optional[_Union[AudioFormat, str]] = ...) -> None: ...

class NoteEvent(_message.Message):
    __slots__ = ("voice", "pitch", "start_beats", "duration_beats", "velocity")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    START_BEATS_FIELD_NUMBER: _ClassVar[int]
    DURATION_BEATS_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    voice: int
    pitch: int
    start_beats: float
    duration_beats: float
    velocity: int
    def __init__(self, voice: _Optional[int] = ..., pitch: _Optional[int] = ..., start_beats: _Optional[float] = ..., duration_beats: _Optional[float] = ..., velocity: _Optional[int] = ...) -> None: ...

class Originality(_message.Message):
    __slots__ = ("longest_copied_run_notes", "closest_source")
    LONGEST_COPIED_RUN_NOTES_FIELD_NUMBER: _ClassVar[int]
    CLOSEST_SOURCE_FIELD_NUMBER: _ClassVar[int]
    longest_copied_run_notes: int
    closest_source: str
    def __init__(self, longest_copied_run_notes: _Optional[int] = ..., closest_source: _Optional[str] = ...) -> None: ...

class GenerationResult(_message.Message):
    __slots__ = ("model", "model_version", "seed", "midi", "audio", "audio_format", "duration_s", "tokens_generated", "originality")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIDI_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    ORIGINALITY_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_version: str
    seed: int
    midi: bytes
    audio: bytes
    audio_format: AudioFormat
    duration_s: float
    tokens_generated: int
    originality: Originality
    def __init__(self, model: _Optional[str] = ..., model_version: _Optional[str] = ..., seed: _Optional[int] = ..., midi: _Optional[bytes] = ..., audio: _Optional[bytes] = ..., audio_format: _Optional[_Union[AudioFormat, str]] = ..., duration_s: _Optional[float] = ..., tokens_generated: _Optional[int] = ..., originality: _Optional[_Union[Originality, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("event", "result")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    event: NoteEvent
    result: GenerationResult
    def __init__(self, event: _Optional[_Union[NoteEvent, _Mapping]] = ..., result: _Optional[_Union[GenerationResult, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("name", "version", "description", "training_data", "representation", "parameters", "training_time_s", "metrics", "licence", "modes")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TIME_S_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    MODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    training_data: str
    representation: str
    parameters: int
    training_time_s: float
    metrics: _containers.ScalarMap[str, float]
    licence: str
    modes: _containers.RepeatedScalarFieldContainer[GenerationMode]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., training_data: _Optional[str] = ..., representation: _Optional[str] = ..., parameters: _Optional[int] = ..., training_time_s: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., licence: _Optional[str] = ..., modes: _Optional[_Iterable[_Union[GenerationMode, str]]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("card", "backend", "status")
    CARD_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    card: ModelCard
    backend: str
    status: str
    def __init__(self, card: _Optional[_Union[ModelCard, _Mapping]] = ..., backend: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...
