"""GenerateService: proto <-> domain conversion only."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import grpc.aio

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.errors import InvalidArgument
from cadenza.kit.usage import report_usage
from cadenza.kit.validate import check_enum, check_id
from services.generate import audio_convert, image_convert, text_convert
from services.generate.audio.room import AudioRoom
from services.generate.catalog_client import RetrievalTracks
from services.generate.image.room import ImageRoom
from services.generate.inference.sampling import Sampling
from services.generate.music.composer import Composer, Piece
from services.generate.music.composition import Composition, Mode, check, parse_key
from services.generate.music.tokens import Note
from services.generate.registry import ModelRegistry
from services.generate.slots import Slots
from services.generate.text.completion import Completion, complete
from services.generate.text.describe import check_title_count, describe
from services.generate.text.facts import midi_facts
from services.generate.text.lyrics.writer import LyricsWriter
from services.generate.text.model import TextModel

_MODES: dict[int, Mode] = {pb.GENERATION_MODE_UNSPECIFIED: Mode.SCRATCH,
          pb.GENERATION_MODE_FROM_SCRATCH: Mode.SCRATCH,
          pb.GENERATION_MODE_CONTINUE: Mode.CONTINUE,
          pb.GENERATION_MODE_HARMONIZE: Mode.HARMONIZE}
_AUDIO: dict[int, str | None] = {pb.AUDIO_FORMAT_UNSPECIFIED: None,
                                  pb.AUDIO_FORMAT_WAV: "wav", pb.AUDIO_FORMAT_FLAC: "flac"}
_AUDIO_BACK = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC}
_MODE_LABELS = {int(n): pb.GenerationMode.Name(n) for n in pb.GenerationMode.values()}
_AUDIO_LABELS = {int(n): pb.AudioFormat.Name(n) for n in pb.AudioFormat.values()}
_MODALITIES = {"music": pb.MODALITY_MUSIC, "text": pb.MODALITY_TEXT,
               "audio": pb.MODALITY_AUDIO, "image": pb.MODALITY_IMAGE}
_MODE_NAMES = {"FROM_SCRATCH": pb.GENERATION_MODE_FROM_SCRATCH,
               "CONTINUE": pb.GENERATION_MODE_CONTINUE,
               "HARMONIZE": pb.GENERATION_MODE_HARMONIZE}


def to_composition(request: pb.GenerateRequest) -> Composition:
    """A GenerateRequest as a checked Composition."""
    s = request.sampling
    length = request.WhichOneof("length")
    return check(Composition(
        model=request.model,
        mode=check_enum("mode", request.mode, _MODES, _MODE_LABELS),
        primer_midi=request.primer_midi,
        bars=request.bars if length == "bars" else None,
        seconds=request.seconds if length == "seconds" else None,
        tempo_bpm=request.tempo_bpm if request.HasField("tempo_bpm") else None,
        key=parse_key(request.key),
        time_signature=request.time_signature or None,
        programs=tuple(request.programs),
        sampling=Sampling(temperature=s.temperature if s.HasField("temperature") else 1.0,
                          top_k=s.top_k, top_p=s.top_p if s.HasField("top_p") else 1.0),
        seed=request.seed if request.HasField("seed") else None,
        audio_format=check_enum("audio_format", request.audio_format, _AUDIO, _AUDIO_LABELS),
        renderer=check_enum("renderer", request.renderer, audio_convert.RENDERERS,
                            audio_convert.RENDERER_LABELS),
        timbre=(audio_convert.timbre_from_pb("timbre", request.timbre)
                if request.HasField("timbre") else None),
        voice_timbres=audio_convert.voice_timbres_from_pb(request.voice_timbres),
        audio_model=request.audio_model))


def to_event(note: Note, steps_per_quarter: int) -> pb.GenerateResponse:
    """A generated note as a streamed NoteEvent."""
    return pb.GenerateResponse(event=pb.NoteEvent(
        voice=note.voice, pitch=note.pitch, start_beats=note.start / steps_per_quarter,
        duration_beats=(note.end - note.start) / steps_per_quarter, velocity=80))


def to_result(piece: Piece) -> pb.GenerateResponse:
    """A finished piece as the stream's final GenerationResult."""
    return pb.GenerateResponse(result=pb.GenerationResult(
        model=piece.model, model_version=piece.version, seed=piece.seed, midi=piece.midi,
        audio=piece.audio,
        audio_format=_AUDIO_BACK.get(piece.audio_format or "", pb.AUDIO_FORMAT_UNSPECIFIED),
        duration_s=piece.duration_s, tokens_generated=piece.tokens_generated,
        originality=pb.Originality(longest_copied_run_notes=piece.copied_run_notes,
                                   closest_source=piece.closest_source)))


class GenerateServicer(generate_pb2_grpc.GenerateServiceServicer):
    """The GenerateService RPCs over the composer, the text room and the model registry."""

    def __init__(self, composer: Composer, registry: ModelRegistry, slots: Slots,
                 tracks: RetrievalTracks, audio: AudioRoom, image: ImageRoom) -> None:
        self.composer = composer
        self.registry = registry
        self.slots = slots
        self.tracks = tracks
        self.audio = audio
        self.image = image
        # One lyrics writer per text model, made at first use (its lexicon takes ~2 s).
        self._writers: dict[str, asyncio.Task[LyricsWriter]] = {}

    async def _writer(self, model: TextModel) -> LyricsWriter:
        task = self._writers.get(model.name)
        if task is None or (task.done() and task.exception() is not None):
            task = self._writers[model.name] = asyncio.create_task(LyricsWriter.create(model))
        return await asyncio.shield(task)

    async def Generate(
        self, request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse],
    ) -> AsyncIterator[pb.GenerateResponse]:
        """Streams the notes of a generation, then its result."""
        composition = to_composition(request)
        spq = self.registry.get(composition.model, "music").spec.steps_per_quarter
        async for item in self.composer.compose(composition):
            if isinstance(item, Piece):
                result = to_result(item)
                report_usage(context, result.result.model, result.result.duration_s)
                yield result
            else:
                yield to_event(item, spq)

    async def GenerateText(
        self, request: pb.GenerateTextRequest,
        context: grpc.aio.ServicerContext[pb.GenerateTextRequest, pb.GenerateTextResponse],
    ) -> AsyncIterator[pb.GenerateTextResponse]:
        """Streams the completion's text as it is decoded, then the result."""
        text_request = text_convert.text_request_from_pb(request)
        model = self.registry.text(text_request.model)
        with self.slots.take(model.name, "text"):
            async for item in complete(model, text_request):
                if isinstance(item, Completion):
                    result = text_convert.text_result_to_pb(item)
                    report_usage(context, model.name, result.result.usage.completion_tokens)
                    yield result
                else:
                    yield pb.GenerateTextResponse(delta=item)

    async def DescribeMusic(
        self, request: pb.DescribeMusicRequest,
        context: grpc.aio.ServicerContext[pb.DescribeMusicRequest, pb.DescribeMusicResponse],
    ) -> pb.DescribeMusicResponse:
        """Titles and a grounded description of a catalog track or a MIDI file."""
        count = check_title_count(request.title_count)
        subject = request.WhichOneof("subject")
        if subject is None:
            raise InvalidArgument("track_id", "give a track_id or a midi file to describe")
        model = self.registry.text(request.model)
        facts = (await self.tracks.facts(check_id("track_id", request.track_id))
                 if subject == "track_id" else midi_facts(request.midi))
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        with self.slots.take(model.name, "describe"):
            description = await describe(model, facts, count, seed)
        return text_convert.description_to_pb(description, model.name, model.spec.version, seed)

    async def WriteLyrics(
        self, request: pb.WriteLyricsRequest,
        context: grpc.aio.ServicerContext[pb.WriteLyricsRequest, pb.WriteLyricsResponse],
    ) -> pb.WriteLyricsResponse:
        """Lyrics for a melody or a structure of sections."""
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        lyrics_request = text_convert.lyrics_request_from_pb(request, seed)
        model = self.registry.text(request.model)
        with self.slots.take(model.name, "lyrics"):
            lyrics = await (await self._writer(model)).write(lyrics_request)
        return text_convert.lyrics_to_pb(lyrics, model.name, model.spec.version, seed)

    async def RenderScore(
        self, request: pb.RenderScoreRequest,
        context: grpc.aio.ServicerContext[pb.RenderScoreRequest, pb.RenderScoreResponse],
    ) -> pb.RenderScoreResponse:
        """A score played by the neural synthesiser, one timbre per voice."""
        score = audio_convert.render_request_from_pb(request)
        model = self.registry.audio(score.model)
        with self.slots.take(model.name, "render"):
            rendering = await self.audio.render_score(model, score)
        response = audio_convert.rendering_to_pb(rendering)
        report_usage(context, response.model, response.duration_s)
        return response

    async def TransferTimbre(
        self, request: pb.TransferTimbreRequest,
        context: grpc.aio.ServicerContext[pb.TransferTimbreRequest, pb.TransferTimbreResponse],
    ) -> pb.TransferTimbreResponse:
        """A recording's pitch and loudness played by an instrument or a mix."""
        transfer = audio_convert.transfer_request_from_pb(request)
        model = self.registry.audio(transfer.model)
        with self.slots.take(model.name, "transfer"):
            result = await self.audio.transfer(model, transfer)
        response = audio_convert.transfer_to_pb(result)
        report_usage(context, response.model, response.duration_s)
        return response

    async def GenerateCover(
        self, request: pb.GenerateCoverRequest,
        context: grpc.aio.ServicerContext[pb.GenerateCoverRequest, pb.GenerateCoverResponse],
    ) -> pb.GenerateCoverResponse:
        """Cover art driven by a track's or a piece's music, with a sampled motif."""
        cover = image_convert.cover_request_from_pb(request)
        # Without a motif the cover needs no model; the default's absence is no error then.
        model = (self.registry.image(cover.model) if cover.weights["motif"] > 0 or cover.model
                 else None)
        with self.slots.take(model.name if model else "cover", "cover"):
            result = await self.image.cover(model, cover)
        response = image_convert.cover_to_pb(result)
        report_usage(context, response.model or "cover", 1)
        return response

    async def GenerateImage(
        self, request: pb.GenerateImageRequest,
        context: grpc.aio.ServicerContext[pb.GenerateImageRequest, pb.GenerateImageResponse],
    ) -> pb.GenerateImageResponse:
        """Samples of the image model for a prompt."""
        image_request = image_convert.image_request_from_pb(request)
        model = self.registry.image(image_request.model)
        with self.slots.take(model.name, "image"):
            images = await self.image.images(model, image_request)
        response = image_convert.images_to_pb(images)
        report_usage(context, response.model, len(response.images))
        return response

    async def ListModels(
        self, request: pb.ListModelsRequest,
        context: grpc.aio.ServicerContext[pb.ListModelsRequest, pb.ListModelsResponse],
    ) -> pb.ListModelsResponse:
        """The served models with their cards and status."""
        response = pb.ListModelsResponse(default_model=self.registry.default_model,
                                         default_text_model=self.registry.default_text_model,
                                         default_audio_model=self.registry.default_audio_model,
                                         default_image_model=self.registry.default_image_model)
        for model in self.registry.models.values():
            card = model.spec.card
            # A figure not measured yet is null in model.json; it is left out, not 0.
            metrics = {k: float(v) for k, v in card.get("metrics", {}).items()
                       if isinstance(v, int | float)}
            if model.spec.modality == "text":
                metrics["context_tokens"] = float(model.spec.max_positions)
            if model.spec.image is not None:
                metrics["default_guidance"] = model.spec.image.default_guidance
                metrics["default_steps"] = float(model.spec.image.default_steps)
                metrics["image_size_px"] = float(model.spec.image.size)
            response.models.add(
                backend=self.registry.backend.name, status=model.status,
                modality=_MODALITIES.get(model.spec.modality, pb.MODALITY_UNSPECIFIED),
                instruments=audio_convert.instruments_of(model.spec),
                card=pb.ModelCard(
                    name=model.spec.name, version=model.spec.version,
                    description=card.get("description", ""),
                    training_data=card.get("training_data", ""),
                    representation=card.get("representation", ""),
                    parameters=int(card.get("parameters", 0)),
                    training_time_s=float(card.get("training_time_s", 0.0)),
                    metrics=metrics,
                    licence=card.get("licence", ""),
                    modes=[_MODE_NAMES[m] for m in card.get("modes", []) if m in _MODE_NAMES]))
        return response
