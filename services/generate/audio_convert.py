"""RenderScore, TransferTimbre and Generate's neural fields: protobuf <-> the audio room's types."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_enum
from services.generate.audio.room import (
    MAX_VOICE_TIMBRES,
    Rendering,
    ScoreRequest,
    Transfer,
    TransferRequest,
)
from services.generate.audio.timbre import TimbreChoice, check_choice
from services.generate.audio.transfer import check_format, check_shift
from services.generate.inference.backend import ModelSpec

_FORMATS: dict[int, str] = {pb.AUDIO_FORMAT_UNSPECIFIED: "wav", pb.AUDIO_FORMAT_WAV: "wav",
                            pb.AUDIO_FORMAT_FLAC: "flac"}
_FORMAT_LABELS = {int(n): pb.AudioFormat.Name(n) for n in pb.AudioFormat.values()}
_FORMAT_BACK = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC}
RENDERERS: dict[int, str] = {pb.RENDERER_UNSPECIFIED: "sampler",
                             pb.RENDERER_SAMPLER: "sampler", pb.RENDERER_NEURAL: "neural"}
RENDERER_LABELS = {int(n): pb.Renderer.Name(n) for n in pb.Renderer.values()}


def timbre_from_pb(field: str, timbre: pb.Timbre) -> TimbreChoice:
    """A Timbre as the room's choice, checked as far as no model is needed."""
    which = timbre.WhichOneof("choice")
    return check_choice(field, TimbreChoice(
        instrument=timbre.instrument if which == "instrument" else None,
        # Sorted: map order is not defined on the wire, and the first bad entry is named.
        weights=tuple(sorted(timbre.mix.weights.items())) if which == "mix" else None))


def voice_timbres_from_pb(timbres: Iterable[pb.Timbre]) -> tuple[TimbreChoice, ...]:
    """The per-voice timbres, at most MAX_VOICE_TIMBRES."""
    items = list(timbres)
    if len(items) > MAX_VOICE_TIMBRES:
        raise InvalidArgument("voice_timbres", f"has {len(items)} timbres; at most "
                                               f"{MAX_VOICE_TIMBRES}")
    return tuple(timbre_from_pb(f"voice_timbres[{i}]", t) for i, t in enumerate(items))


def _seed(request: pb.RenderScoreRequest | pb.TransferTimbreRequest) -> int:
    return request.seed if request.HasField("seed") else secrets.randbits(63)


def render_request_from_pb(request: pb.RenderScoreRequest) -> ScoreRequest:
    """A RenderScoreRequest as the room's ScoreRequest (InvalidArgument names the field)."""
    return ScoreRequest(
        model=request.model, midi=request.midi,
        timbre=timbre_from_pb("timbre", request.timbre) if request.HasField("timbre") else None,
        voice_timbres=voice_timbres_from_pb(request.voice_timbres),
        audio_format=check_enum("audio_format", request.audio_format, _FORMATS,
                                _FORMAT_LABELS),
        seed=_seed(request))


def rendering_to_pb(r: Rendering) -> pb.RenderScoreResponse:
    """A Rendering as RenderScoreResponse."""
    return pb.RenderScoreResponse(
        audio=r.audio, audio_format=_FORMAT_BACK[r.audio_format],
        sample_rate_hz=r.sample_rate_hz, duration_s=r.duration_s, model=r.model,
        model_version=r.version, seed=r.seed,
        voices=[pb.VoiceRendering(voice=v.voice, weights=v.weights, notes=v.notes)
                for v in r.voices])


def transfer_request_from_pb(request: pb.TransferTimbreRequest) -> TransferRequest:
    """A TransferTimbreRequest as the room's TransferRequest (the audio is not decoded yet)."""
    if not request.HasField("timbre"):
        raise InvalidArgument("timbre", "is required; give an instrument or a mix")
    return TransferRequest(
        model=request.model, audio=request.audio,
        container=check_format(request.audio_format),
        timbre=timbre_from_pb("timbre", request.timbre),
        shift_semitones=check_shift(request.shift_semitones
                                    if request.HasField("shift_semitones") else None),
        output_format=check_enum("output_format", request.output_format, _FORMATS,
                                 _FORMAT_LABELS),
        seed=_seed(request))


def transfer_to_pb(t: Transfer) -> pb.TransferTimbreResponse:
    """A Transfer as TransferTimbreResponse."""
    return pb.TransferTimbreResponse(
        audio=t.audio, audio_format=_FORMAT_BACK[t.audio_format],
        sample_rate_hz=t.sample_rate_hz, duration_s=t.duration_s, model=t.model,
        model_version=t.version, seed=t.seed, weights=t.weights,
        shift_semitones=t.shift_semitones, voiced_fraction=t.voiced_fraction,
        median_f0_hz=t.median_f0_hz)


def instruments_of(spec: ModelSpec) -> list[str]:
    """The instrument names ListModels shows for a model (none unless it is an audio one)."""
    return list(spec.audio.instrument_names) if spec.audio is not None else []
