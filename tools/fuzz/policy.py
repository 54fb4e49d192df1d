"""What the fuzzer may send to a shared mesh: no lasting state, no minutes of work.

The mesh under test is shared (the tests' session mesh, or someone's `make up`), so a
body that the server would accept must not change what other callers see, nor make the
mesh work for long. Each rule below reads a body as the server will decode it and says
whether it may be sent; a body it refuses is redrawn. Bodies that do not decode, and
requests outside the documented contract (which a correct server refuses at once), always
pass: those are what the fuzzer is for. A method without a rule is fuzzed freely, so a new
RPC is covered the day it is served (and a costly one shows up as DEADLINE_EXCEEDED).

Why these methods:
- IngestTrack: a stored track appears in everyone's searches and recommendations, and
  accepted audio costs seconds of analysis. Headers must carry a track_id that is not a
  valid id, so the stream is read and then refused.
- DeleteTrack: deleting another test's track breaks it. Only invalid ids, or valid ids
  under the never-ingested prefix (reaching the NOT_FOUND path).
- RecordEvent(s): a stored event changes what the recommender learns. Events must name a
  track that cannot be in the catalog (invalid, or the never-ingested prefix).
- TrainModel: a run fits models for seconds on every core and publishes a new model
  version that other tests read; an empty algorithm means the default one. The algorithm
  must contain a character no algorithm name has, so it is always refused.
- Generate: each bar costs ~0.4 s of CPU on a small machine (the default 8 bars ~3 s,
  the maximum 128 bars over a minute). Requests within the contract may ask for at most
  CHEAP_QUARTERS quarter notes of music.
- GenerateText, WriteLyrics, DescribeMusic: the text model writes ~10 tokens a second on
  two busy cores, so accepted requests must be tiny (CHEAP_TEXT_TOKENS, a few syllables
  of lyrics); DescribeMusic samples a dozen completions, so only refused ones are sent.
- RenderScore: each voice costs ~0.5 s of CPU per minute of score (up to 600 s and 32
  lines). Scores mido can read must last at most CHEAP_SCORE_S.
- TransferTimbre: pYIN alone costs ~1 s per 30 s of recording. Recordings whose header
  says how long they are must last at most CHEAP_RECORDING_S (or be over the 60 s limit,
  refused at once); bodies without a timbre are refused before the audio is read.
- GenerateImage, GenerateCover: each DDIM step is one network call over every sample
  (twice, with guidance), ~0.1 s for eight samples; a cover also costs ~0.5 s to compose.
  Accepted requests must set their steps, at most CHEAP_IMAGE_STEPS over all samples;
  covers must name a track under the never-ingested prefix or send a MIDI file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from tools.fuzz.values import ABSENT_ID_PREFIX

Rule = Callable[[Any], bool]

# The documented id form (TrackMetadata.track_id); anything else is refused by the server.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Algorithm names are of these characters (as are any a later release may add).
_NAME_CHARS = re.compile(r"^[A-Za-z0-9_-]*$")
_TIME_SIGNATURE = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]+)\s*$")

CHEAP_QUARTERS = 16.0
CHEAP_IMAGE_STEPS = 32
# GenerateRequest's documented ranges (protos/cadenza/generate/v1/generate.proto).
MAX_BARS = 128
MAX_SECONDS = 600.0
MIN_TEMPO_BPM, MAX_TEMPO_BPM = 20.0, 300.0
DEFAULT_BARS = 8
DEFAULT_TEMPO_BPM = 100.0
WORST_PRIMER_QUARTERS_PER_BAR = 16.0
WORST_PRIMER_TEMPO_BPM = MAX_TEMPO_BPM


def harmless_id(track_id: str) -> bool:
    """True for an id no catalog track can have: invalid, or under the absent prefix."""
    return not _VALID_ID.match(track_id) or track_id.startswith(ABSENT_ID_PREFIX)


def _ingest(request: Any) -> bool:
    return not request.HasField("header") or harmless_id(request.header.metadata.track_id)


def _delete(request: Any) -> bool:
    return harmless_id(request.track_id)


def _record(request: Any) -> bool:
    return harmless_id(request.event.track_id)


def _train(request: Any) -> bool:
    return not _NAME_CHARS.match(request.algorithm)


def _enum_number(message: Any, field: str, name: str) -> int:
    return int(message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_name[name].number)


def _quarters_per_bar(time_signature: str) -> float | None:
    """Quarter notes per bar of "n/d"; None for a signature the contract cannot mean."""
    match = _TIME_SIGNATURE.match(time_signature)
    if not match:
        return None
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if numerator <= 0 or denominator <= 0:
        return None
    return numerator * 4 / denominator


def primer_quarters(data: bytes) -> float | None:
    """How long a MIDI file runs, in quarter notes (its longest track); None if unreadable.

    Read with mido as the generate service reads primers: a file mido refuses is refused
    by the service too.
    """
    import mido  # only Generate bodies with primers need it

    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
        ticks = max((sum(message.time for message in track) for track in midi.tracks),
                    default=0)
        return float(ticks) / float(midi.ticks_per_beat)
    except Exception:  # mido raises many types for bad bytes
        return None


def _generate(request: Any) -> bool:
    """True when the request is outside the contract or asks for little music."""
    primed = request.mode in (_enum_number(request, "mode", "GENERATION_MODE_CONTINUE"),
                              _enum_number(request, "mode", "GENERATION_MODE_HARMONIZE"))
    if primed and not request.primer_midi:
        return True  # a primer is required
    if request.HasField("tempo_bpm") and not MIN_TEMPO_BPM <= request.tempo_bpm <= MAX_TEMPO_BPM:
        return True
    per_bar: float | None = 4.0
    if request.time_signature:
        per_bar = _quarters_per_bar(request.time_signature)
        if per_bar is None:
            return True
    elif primed:
        per_bar = WORST_PRIMER_QUARTERS_PER_BAR  # the primer's metre is not known here
    assert per_bar is not None
    if primed and primer_quarters(request.primer_midi) is None:
        return True  # the service cannot read it either
    if request.mode == _enum_number(request, "mode", "GENERATION_MODE_HARMONIZE"):
        quarters = primer_quarters(request.primer_midi)
        return quarters is not None and quarters <= CHEAP_QUARTERS
    length = request.WhichOneof("length")
    if length == "bars":
        if not 1 <= request.bars <= MAX_BARS:
            return True
        return bool(request.bars * per_bar <= CHEAP_QUARTERS)
    if length == "seconds":
        if not 0 < request.seconds <= MAX_SECONDS:  # NaN too
            return True
        if request.HasField("tempo_bpm"):
            tempo = request.tempo_bpm
        else:
            tempo = WORST_PRIMER_TEMPO_BPM if primed else DEFAULT_TEMPO_BPM
        return bool(request.seconds * tempo / 60 <= CHEAP_QUARTERS)
    return DEFAULT_BARS * per_bar <= CHEAP_QUARTERS


CHEAP_TEXT_TOKENS = 8       # a 135M model on two busy cores writes ~10 tokens a second
CHEAP_LYRIC_SYLLABLES = 8


CHEAP_SCORE_S = 8.0
CHEAP_RECORDING_S = 5.0
MAX_RECORDING_S = 60.0


def score_seconds(data: bytes) -> float | None:
    """How long a MIDI file plays, in seconds through its tempo map; None if unreadable."""
    import mido

    try:
        return float(mido.MidiFile(file=io.BytesIO(data)).length)
    except Exception:  # mido raises many types for bad bytes (and for type 2 files)
        return None


def recording_seconds(data: bytes) -> float | None:
    """The duration an audio file's header declares; None if it declares none."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:  # not audio libsndfile reads: refused at once
        return None
    return float(info.frames) / info.samplerate if info.samplerate and info.frames >= 0 else None


def _render_score(request: Any) -> bool:
    """True when the score cannot be read (refused at once) or plays for a few seconds."""
    seconds = score_seconds(request.midi)
    return seconds is None or seconds <= CHEAP_SCORE_S


def _transfer_timbre(request: Any) -> bool:
    """True when the request is refused before decoding, or the recording is short."""
    if not request.HasField("timbre"):
        return True
    seconds = recording_seconds(request.audio)
    return seconds is None or seconds <= CHEAP_RECORDING_S or seconds > MAX_RECORDING_S


def _generate_text(request: Any) -> bool:
    """True when max_tokens is set and either tiny or out of range (refused at once)."""
    return bool(request.HasField("max_tokens")
                and (request.max_tokens <= CHEAP_TEXT_TOKENS or request.max_tokens > 1024))


def _write_lyrics(request: Any) -> bool:
    """True when the service refuses the request, or it asks for a few syllables only."""
    from cadenza.kit.errors import InvalidArgument
    from services.generate.text_convert import lyrics_request_from_pb

    try:
        lyrics = lyrics_request_from_pb(request, 0)
    except InvalidArgument:
        return True
    return lyrics.melody_midi is None and sum(
        s.lines * s.syllables_per_line for s in lyrics.sections) <= CHEAP_LYRIC_SYLLABLES


def _describe(request: Any) -> bool:
    """True when the request is refused before the model writes (each accepted one samples
    about a dozen completions)."""
    from cadenza.kit.errors import InvalidArgument
    from services.generate.text.describe import check_title_count
    from services.generate.text.facts import midi_facts

    try:
        check_title_count(request.title_count)
    except InvalidArgument:
        return True
    subject = request.WhichOneof("subject")
    if subject is None:
        return True
    if subject == "track_id":
        return harmless_id(request.track_id)
    try:
        midi_facts(request.midi)
    except InvalidArgument:
        return True
    return False


def _generate_image(request: Any) -> bool:
    """True when the service refuses the request, or it asks for few denoising steps."""
    from cadenza.kit.errors import InvalidArgument
    from services.generate.image_convert import image_request_from_pb

    try:
        checked = image_request_from_pb(request)
    except InvalidArgument:
        return True
    steps = checked.sampling.steps
    return steps is not None and checked.count * steps <= CHEAP_IMAGE_STEPS


def _generate_cover(request: Any) -> bool:
    """True when the service refuses the request, or it is cheap and touches no real track."""
    from cadenza.kit.errors import InvalidArgument
    from services.generate.image_convert import cover_request_from_pb

    try:
        checked = cover_request_from_pb(request)
    except InvalidArgument:
        return True
    steps = checked.sampling.steps
    cheap = checked.weights["motif"] == 0 or (steps is not None and steps <= CHEAP_IMAGE_STEPS)
    return cheap and (checked.track_id is None or harmless_id(checked.track_id))


# "Service/Method" (without the package, so the rules survive a v2) -> rule.
RULES: dict[str, Rule] = {
    "RetrievalService/IngestTrack": _ingest,
    "RetrievalService/DeleteTrack": _delete,
    "RecommendService/RecordEvent": _record,
    "RecommendService/RecordEvents": _record,
    "RecommendService/TrainModel": _train,
    "GenerateService/Generate": _generate,
    "GenerateService/GenerateText": _generate_text,
    "GenerateService/WriteLyrics": _write_lyrics,
    "GenerateService/DescribeMusic": _describe,
    "GenerateService/RenderScore": _render_score,
    "GenerateService/TransferTimbre": _transfer_timbre,
    "GenerateService/GenerateImage": _generate_image,
    "GenerateService/GenerateCover": _generate_cover,
}


def allows(short_name: str, request_class: type[Message], data: bytes) -> bool:
    """Whether this body may be sent to the method ("Service/Method")."""
    rule = RULES.get(short_name)
    if rule is None:
        return True
    try:
        request = request_class.FromString(data)
    except Exception:  # DecodeError and friends: the server refuses it before any work
        return True
    return bool(rule(request))
