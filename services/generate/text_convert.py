"""GenerateText and DescribeMusic: protobuf <-> the text room's domain types."""

from __future__ import annotations

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_enum, shown
from services.generate.inference.sampling import Sampling
from services.generate.text.completion import (
    DEFAULT_MAX_TOKENS,
    Completion,
    FinishReason,
    TextRequest,
    check,
)
from services.generate.text.describe import Description
from services.generate.text.lyrics.domain import Lyrics, LyricsRequest, Section, plan
from services.generate.text.model import Message

_ROLES: dict[int, str] = {pb.CHAT_ROLE_SYSTEM: "system", pb.CHAT_ROLE_USER: "user",
                          pb.CHAT_ROLE_ASSISTANT: "assistant"}
_ROLE_LABELS = {int(n): pb.ChatRole.Name(n) for n in pb.ChatRole.values()}
_SCHEMES: dict[int, str] = {pb.RHYME_SCHEME_UNSPECIFIED: "AABB", pb.RHYME_SCHEME_AABB: "AABB",
                            pb.RHYME_SCHEME_ABAB: "ABAB", pb.RHYME_SCHEME_ABCB: "ABCB",
                            pb.RHYME_SCHEME_AAAA: "AAAA"}
_SCHEME_LABELS = {int(n): pb.RhymeScheme.Name(n) for n in pb.RhymeScheme.values()}
LANGUAGES = ("en",)
_FINISH = {FinishReason.STOP: pb.FINISH_REASON_STOP, FinishReason.LENGTH: pb.FINISH_REASON_LENGTH}


def text_request_from_pb(request: pb.GenerateTextRequest) -> TextRequest:
    """A GenerateTextRequest as a checked TextRequest (InvalidArgument names the field)."""
    s = request.sampling
    which = request.WhichOneof("input")
    messages = tuple(
        Message(check_enum(f"chat.messages[{i}].role", m.role, _ROLES, _ROLE_LABELS), m.content)
        for i, m in enumerate(request.chat.messages)) if which == "chat" else ()
    return check(TextRequest(
        model=request.model, messages=messages,
        prompt=request.prompt if which == "prompt" else None,
        max_tokens=request.max_tokens if request.HasField("max_tokens") else DEFAULT_MAX_TOKENS,
        sampling=Sampling(temperature=s.temperature if s.HasField("temperature") else 1.0,
                          top_k=s.top_k, top_p=s.top_p if s.HasField("top_p") else 1.0),
        stop=tuple(request.stop), seed=request.seed if request.HasField("seed") else None))


def text_result_to_pb(c: Completion) -> pb.GenerateTextResponse:
    """The stream's final message."""
    return pb.GenerateTextResponse(result=pb.TextResult(
        model=c.model, model_version=c.version, seed=c.seed, text=c.text,
        finish_reason=_FINISH[c.finish_reason],
        usage=pb.TokenUsage(prompt_tokens=c.prompt_tokens,
                            completion_tokens=c.completion_tokens)))


def description_to_pb(d: Description, model: str, version: str,
                      seed: int) -> pb.DescribeMusicResponse:
    """A Description as DescribeMusicResponse, facts included."""
    f = d.facts
    return pb.DescribeMusicResponse(
        titles=list(d.titles), description=d.description, model=model, model_version=version,
        seed=seed, facts=pb.MusicFacts(
            key=f.key, mode=f.mode, tempo_bpm=f.tempo_bpm, tempo_word=f.tempo_word,
            loudness_word=f.loudness_word, brightness_word=f.brightness_word,
            instruments=list(f.instruments), duration_s=f.duration_s))


def lyrics_request_from_pb(request: pb.WriteLyricsRequest, seed: int) -> LyricsRequest:
    """A WriteLyricsRequest as the lyrics room's request (validated there by plan())."""
    language = request.language or "en"
    if language not in LANGUAGES:
        raise InvalidArgument("language", f"{shown(language)} is not served; use one of "
                                          f"{', '.join(LANGUAGES)}")
    shape = request.WhichOneof("shape")
    if shape is None:
        raise InvalidArgument("melody_midi", "give a melody_midi or a structure of sections")
    lyrics = LyricsRequest(
        theme=request.theme,
        rhyme_scheme=check_enum("rhyme_scheme", request.rhyme_scheme, _SCHEMES, _SCHEME_LABELS),
        melody_midi=request.melody_midi if shape == "melody_midi" else None,
        sections=tuple(Section(s.name, s.lines, s.syllables_per_line)
                       for s in request.structure.sections) if shape == "structure" else (),
        seed=seed,
        temperature=request.temperature if request.HasField("temperature") else 0.8)
    try:
        plan(lyrics)  # checked here, before a slot is taken; the writer plans again
    except InvalidArgument as error:
        if error.field.startswith("sections"):  # the API nests them in `structure`
            raise InvalidArgument(f"structure.{error.field}",
                                  error.message[len(error.field) + 2:]) from None
        raise
    return lyrics


def lyrics_to_pb(lyrics: Lyrics, model: str, version: str, seed: int) -> pb.WriteLyricsResponse:
    """Lyrics as WriteLyricsResponse: lines with syllables, text and the karaoke MIDI."""
    reply = pb.WriteLyricsResponse(text=lyrics.text, midi=lyrics.midi, model=model,
                                   model_version=version, seed=seed)
    first_note = 0
    for line in lyrics.lines:
        reply.lines.add(text=line.text, syllables=list(line.syllables), section=line.section,
                        first_note=first_note if line.notes else 0)
        first_note += len(line.notes)
    return reply
