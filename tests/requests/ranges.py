"""Every numeric field a caller can send: its documented range and the validator that
enforces it.

The numbers here are written out, not imported from the services, so the tests check the
validators against the documented contract rather than against themselves. Each entry's
`doc` must appear in the field's comment in the .proto file (test_ranges_documented.py),
and every numeric field reachable from a request message must have an entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from cadenza.gateway.v1 import gateway_pb2 as gw
from cadenza.generate.v1 import generate_pb2 as gen
from cadenza.kit.validate import check_page_size
from cadenza.recommend.v1 import recommend_pb2 as rec
from cadenza.retrieval.v1 import retrieval_pb2 as ret
from gateway.admin import check_grace, check_quotas, check_ttl, quota_from_proto
from gateway.servicer import usage_query
from services.generate.audio_convert import render_request_from_pb, transfer_request_from_pb
from services.generate.image_convert import cover_request_from_pb, image_request_from_pb
from services.generate.servicer import to_composition
from services.generate.text.describe import check_title_count
from services.generate.text_convert import lyrics_request_from_pb, text_request_from_pb
from services.recommend import convert as rec_convert
from services.recommend.event_convert import event_from_pb
from services.recommend.event_log import check_event
from services.retrieval.catalog import check_metadata
from services.retrieval.convert import example_space_from_pb, filter_from_pb, metadata_from_pb
from services.retrieval.servicer import LIST_PAGE_SIZE, SEARCH_PAGE_SIZE
from services.retrieval.similarity import resolve_weights

Check = Callable[[Any], object]


@dataclass(frozen=True)
class Bound:
    """One numeric field: where it sits in a request, its range and how errors name it."""

    field: str            # the field's proto full name (a map's value: the map field)
    root: type[Message]   # a request message the field is reached from
    path: str             # from the root: "sampling.top_p", "weights[timbre]", "programs[0]"
    name: str             # the field as InvalidArgument names it
    low: float | None     # None: no bound on that side (but finite, for doubles)
    high: float | None
    doc: str              # text the .proto comment of the field must contain
    check: Check          # the validator the servicer runs on this request
    low_open: bool = False
    high_open: bool = False
    zero_ok: bool = False  # 0 means "the default", accepted though outside [low, high]
    base: Callable[[], Message] | None = None  # a valid request to set the field in


def _generate(r: gen.GenerateRequest) -> object:
    return to_composition(r)


def _text(r: gen.GenerateTextRequest) -> object:
    return text_request_from_pb(r)


def _text_base() -> Message:
    return gen.GenerateTextRequest(prompt="Once upon a time")


def _chat_base() -> Message:
    return gen.GenerateTextRequest(chat=gen.Chat(messages=[
        gen.ChatMessage(role=gen.CHAT_ROLE_USER, content="Hello")]))


def _lyrics(r: gen.WriteLyricsRequest) -> object:
    return lyrics_request_from_pb(r, 0)


def _lyrics_base() -> Message:
    return gen.WriteLyricsRequest(theme="rain", structure=gen.LyricStructure(sections=[
        gen.LyricSection(name="verse", lines=4, syllables_per_line=8)]))


def _render(r: gen.RenderScoreRequest) -> object:
    return render_request_from_pb(r)


def _transfer(r: gen.TransferTimbreRequest) -> object:
    return transfer_request_from_pb(r)


def _mix() -> gen.Timbre:
    # Another instrument already weighs 1, so a weight of 0 for the one under test is fine.
    return gen.Timbre(mix=gen.TimbreMix(weights={"cello": 1.0}))


def _render_base() -> Message:
    return gen.RenderScoreRequest(timbre=_mix())


def _neural_base() -> Message:
    return gen.GenerateRequest(renderer=gen.RENDERER_NEURAL, audio_format=gen.AUDIO_FORMAT_WAV,
                               timbre=_mix())


def _transfer_base() -> Message:
    return gen.TransferTimbreRequest(timbre=gen.Timbre(instrument="violin"))


def _cover(r: gen.GenerateCoverRequest) -> object:
    return cover_request_from_pb(r)


def _cover_base() -> Message:
    return gen.GenerateCoverRequest(midi=b"MThd")   # read later, by the room


def _image(r: gen.GenerateImageRequest) -> object:
    return image_request_from_pb(r)


def _image_base() -> Message:
    return gen.GenerateImageRequest(prompt="a moon over the sea")


def _describe(r: gen.DescribeMusicRequest) -> object:
    return check_title_count(r.title_count)


def _ingest(r: ret.IngestTrackRequest) -> object:
    check_metadata(metadata_from_pb(r.header.metadata))
    return None


def _list(r: ret.ListTracksRequest) -> object:
    filter_from_pb(r.filter)
    return check_page_size("page_size", r.page_size, *LIST_PAGE_SIZE)


def _search(r: ret.SearchTracksRequest) -> object:
    filter_from_pb(r.filter)
    check_page_size("page_size", r.page_size, *SEARCH_PAGE_SIZE)
    if r.WhichOneof("query") == "examples":
        example_space_from_pb(r.examples.space)
    return resolve_weights(dict(r.weights))


def _event(r: rec.RecordEventRequest) -> object:
    check_event("event", event_from_pb(r.event), time.time(), 300.0)
    return None


def _ingest_base() -> Message:
    return ret.IngestTrackRequest(header=ret.IngestHeader(
        metadata=ret.TrackMetadata(track_id="t1", title="A title")))


def _event_base() -> Message:
    return rec.RecordEventRequest(event=rec.Event(event_id="e1", user_id="u1", track_id="t1",
                                                  kind=rec.EVENT_KIND_PLAY))


def _user_base() -> Message:
    return rec.RecommendRequest(user_id="u1")


def _similar_tracks(r: rec.SimilarTracksRequest) -> object:
    return rec_convert.limit_from_pb(r)


G, RT, RC = "cadenza.generate.v1", "cadenza.retrieval.v1", "cadenza.recommend.v1"
_FILTERS = [
    Bound(f"{RT}.FloatRange.{side}", ret.ListTracksRequest, f"filter.{name}.{side}",
          f"filter.{name}.{side}", None, None, "any finite number", _list)
    for name in ("tempo_bpm", "duration_s", "loudness_db", "brightness_hz")
    for side in ("min", "max")
] + [
    Bound(f"{RT}.IntRange.{side}", ret.ListTracksRequest, f"filter.year.{side}",
          f"filter.year.{side}", None, None, "any int32", _list)
    for side in ("min", "max")
]
_TARGETS = [
    Bound(f"{RC}.AudioTargets.{kind}_{name}", rec.RecommendRequest, f"targets.{kind}_{name}",
          f"targets.{kind}_{name}", low, high, doc, rec_convert.recommend_query_from_pb,
          base=_user_base)
    for name, low, high, doc in (("tempo_bpm", 1.0, 1000.0, "1-1000"),
                                 ("loudness_db", -120.0, 0.0, "-120 to 0"),
                                 ("brightness_hz", 1.0, 50_000.0, "1-50000"),
                                 ("duration_s", 0.0, 86_400.0, "0-86400"))
    for kind in ("min", "max", "target")
]

def _quotas(r: gw.SetQuotasRequest) -> object:
    return check_quotas([quota_from_proto(q) for q in r.quotas])


def _quota_base() -> Message:
    return gw.SetQuotasRequest(tenant="acme", quotas=[gw.Quota(model="*")])


GW = "cadenza.gateway.v1"
BOUNDS: list[Bound] = [
    # -- gateway
    Bound(f"{GW}.CreateKeyRequest.ttl_seconds", gw.CreateKeyRequest, "ttl_seconds",
          "ttl_seconds", 0, 316224000, "0 to 316224000",
          lambda r: check_ttl(r.ttl_seconds)),
    Bound(f"{GW}.RotateKeyRequest.grace_seconds", gw.RotateKeyRequest, "grace_seconds",
          "grace_seconds", 0, 86400, "0 to 86400", lambda r: check_grace(r.grace_seconds)),
    Bound(f"{GW}.Quota.requests_per_minute", gw.SetQuotasRequest,
          "quotas[0].requests_per_minute", "quotas[0].requests_per_minute", 0, None,
          "0 or more", _quotas, base=_quota_base),
    Bound(f"{GW}.Quota.units_per_day", gw.SetQuotasRequest, "quotas[0].units_per_day",
          "quotas[0].units_per_day", 0, None, "0 or more, finite", _quotas,
          base=_quota_base),
    # -- generate
    Bound(f"{G}.GenerateRequest.bars", gen.GenerateRequest, "bars", "bars", 1, 128, "1-128",
          _generate),
    # 600 s is the cap on any length, but at the default 100 bpm the cap of 512 quarter
    # notes comes first: 307.2 s.
    Bound(f"{G}.GenerateRequest.seconds", gen.GenerateRequest, "seconds", "seconds", 0,
          307.2, "(0, 600]", _generate, low_open=True),
    Bound(f"{G}.GenerateRequest.tempo_bpm", gen.GenerateRequest, "tempo_bpm", "tempo_bpm",
          20, 300, "20-300", _generate),
    Bound(f"{G}.GenerateRequest.programs", gen.GenerateRequest, "programs[0]",
          "programs[0]", 0, 127, "0-127", _generate),
    Bound(f"{G}.GenerateRequest.seed", gen.GenerateRequest, "seed", "seed", None, None,
          "any uint64", _generate),
    Bound(f"{G}.Sampling.temperature", gen.GenerateRequest, "sampling.temperature",
          "sampling.temperature", 0, 10, "(0, 10]", _generate, low_open=True),
    Bound(f"{G}.Sampling.top_k", gen.GenerateRequest, "sampling.top_k", "sampling.top_k",
          0, 1000, "0-1000", _generate),
    Bound(f"{G}.Sampling.top_p", gen.GenerateRequest, "sampling.top_p", "sampling.top_p",
          0, 1, "(0, 1]", _generate, low_open=True),
    Bound(f"{G}.GenerateTextRequest.max_tokens", gen.GenerateTextRequest, "max_tokens",
          "max_tokens", 1, 1024, "1-1024", _text, base=_text_base),
    Bound(f"{G}.GenerateTextRequest.seed", gen.GenerateTextRequest, "seed", "seed", None,
          None, "any uint64", _text, base=_text_base),
    Bound(f"{G}.TextSampling.temperature", gen.GenerateTextRequest, "sampling.temperature",
          "sampling.temperature", 0, 2, "[0, 2]", _text, base=_text_base),
    Bound(f"{G}.TextSampling.top_k", gen.GenerateTextRequest, "sampling.top_k",
          "sampling.top_k", 0, 1000, "0-1000", _text, base=_text_base),
    Bound(f"{G}.TextSampling.top_p", gen.GenerateTextRequest, "sampling.top_p",
          "sampling.top_p", 0, 1, "(0, 1]", _text, low_open=True, base=_text_base),
    Bound(f"{G}.LyricSection.lines", gen.WriteLyricsRequest, "structure.sections[0].lines",
          "structure.sections[0].lines", 1, 16, "1-16 lines", _lyrics, base=_lyrics_base),
    Bound(f"{G}.LyricSection.syllables_per_line", gen.WriteLyricsRequest,
          "structure.sections[0].syllables_per_line",
          "structure.sections[0].syllables_per_line", 1, 16, "1-16 syllables", _lyrics,
          base=_lyrics_base),
    Bound(f"{G}.WriteLyricsRequest.temperature", gen.WriteLyricsRequest, "temperature",
          "temperature", 0, 2, "(0, 2]", _lyrics, low_open=True, base=_lyrics_base),
    Bound(f"{G}.WriteLyricsRequest.seed", gen.WriteLyricsRequest, "seed", "seed", None, None,
          "any uint64", _lyrics, base=_lyrics_base),
    Bound(f"{G}.DescribeMusicRequest.title_count", gen.DescribeMusicRequest, "title_count",
          "title_count", 1, 10, "1-10", _describe, zero_ok=True),
    Bound(f"{G}.DescribeMusicRequest.seed", gen.DescribeMusicRequest, "seed", "seed", None,
          None, "any uint64", _describe),
    Bound(f"{G}.TimbreMix.weights", gen.RenderScoreRequest, "timbre.mix.weights[violin]",
          "timbre.mix.weights[violin]", 0, None, "finite, >= 0", _render, base=_render_base),
    Bound(f"{G}.TimbreMix.weights", gen.GenerateRequest, "timbre.mix.weights[violin]",
          "timbre.mix.weights[violin]", 0, None, "finite, >= 0", _generate, base=_neural_base),
    Bound(f"{G}.RenderScoreRequest.seed", gen.RenderScoreRequest, "seed", "seed", None, None,
          "any uint64", _render),
    Bound(f"{G}.TransferTimbreRequest.shift_semitones", gen.TransferTimbreRequest,
          "shift_semitones", "shift_semitones", -24, 24, "-24 to 24", _transfer,
          base=_transfer_base),
    Bound(f"{G}.TransferTimbreRequest.seed", gen.TransferTimbreRequest, "seed", "seed", None,
          None, "any uint64", _transfer, base=_transfer_base),
    Bound(f"{G}.GenerateCoverRequest.weights", gen.GenerateCoverRequest, "weights[palette]",
          "weights[palette]", 0, None, "finite, >= 0", _cover, base=_cover_base),
    Bound(f"{G}.GenerateCoverRequest.seed", gen.GenerateCoverRequest, "seed", "seed", None,
          None, "any uint64", _cover, base=_cover_base),
    *(Bound(f"{G}.ImageSampling.{name}", root, f"sampling.{name}", f"sampling.{name}", low,
            high, doc, check, base=base)
      for name, low, high, doc in (("guidance", 0, 20, "[0, 20]"), ("steps", 1, 250, "1-250"))
      for root, check, base in ((gen.GenerateCoverRequest, _cover, _cover_base),
                                (gen.GenerateImageRequest, _image, _image_base))),
    Bound(f"{G}.GenerateImageRequest.count", gen.GenerateImageRequest, "count", "count", 1,
          8, "1-8", _image, zero_ok=True, base=_image_base),
    Bound(f"{G}.GenerateImageRequest.size", gen.GenerateImageRequest, "size", "size", 32,
          1024, "32-1024", _image, zero_ok=True, base=_image_base),
    Bound(f"{G}.GenerateImageRequest.seed", gen.GenerateImageRequest, "seed", "seed", None,
          None, "any uint64", _image, base=_image_base),
    # -- retrieval
    Bound(f"{RT}.TrackMetadata.year", ret.IngestTrackRequest, "header.metadata.year",
          "header.metadata.year", 1, 9999, "1-9999", _ingest, base=_ingest_base),
    Bound(f"{RT}.ListTracksRequest.page_size", ret.ListTracksRequest, "page_size",
          "page_size", 1, 500, "1-500", _list, zero_ok=True),
    Bound(f"{RT}.SearchTracksRequest.page_size", ret.SearchTracksRequest, "page_size",
          "page_size", 1, 100, "1-100", _search, zero_ok=True),
    Bound(f"{RT}.SearchTracksRequest.weights", ret.SearchTracksRequest, "weights[timbre]",
          "weights[timbre]", 0, None, "finite and >= 0", _search),
    *_FILTERS,
    # -- recommend
    Bound(f"{RC}.Event.listened_ms", rec.RecordEventRequest, "event.listened_ms",
          "event.listened_ms", 0, 86_400_000, "0-86400000", _event, base=_event_base),
    Bound(f"{RC}.Event.completion", rec.RecordEventRequest, "event.completion",
          "event.completion", 0, 1, "[0, 1]", _event, base=_event_base),
    Bound(f"{RC}.Event.count", rec.RecordEventRequest, "event.count", "event.count",
          1, 1_000_000, "1-1000000", _event, zero_ok=True, base=_event_base),
    Bound(f"{RC}.RecommendRequest.limit", rec.RecommendRequest, "limit", "limit", 1, 100,
          "1-100", rec_convert.recommend_query_from_pb, base=_user_base),
    Bound(f"{RC}.RecommendRequest.weights", rec.RecommendRequest, "weights[collaborative]",
          "weights[collaborative]", 0, None, "finite and >= 0",
          rec_convert.recommend_query_from_pb, base=_user_base),
    Bound(f"{RC}.RecommendRequest.max_per_artist", rec.RecommendRequest, "max_per_artist",
          "max_per_artist", 0, None, ">= 0", rec_convert.recommend_query_from_pb,
          base=_user_base),
    Bound(f"{RC}.SimilarTracksRequest.limit", rec.SimilarTracksRequest, "limit", "limit",
          1, 100, "1-100", _similar_tracks),
    Bound(f"{RC}.SimilarUsersRequest.limit", rec.SimilarUsersRequest, "limit", "limit",
          1, 100, "1-100", _similar_tracks),
    *_TARGETS,
    Bound(f"{RC}.AudioTargets.target_key", rec.RecommendRequest, "targets.target_key",
          "targets.target_key", 0, 11, "0 = C ... 11 = B", rec_convert.recommend_query_from_pb,
          base=_user_base),
    Bound(f"{RC}.AudioTargets.target_mode", rec.RecommendRequest, "targets.target_mode",
          "targets.target_mode", 0, 1, "1 = major, 0 = minor",
          rec_convert.recommend_query_from_pb, base=_user_base),
]


@dataclass(frozen=True)
class EnumField:
    """One enum field of a request: unknown numbers must be rejected naming it."""

    field: str
    root: type[Message]
    path: str
    name: str
    check: Check
    base: Callable[[], Message] | None = None
    required: bool = False  # the UNSPECIFIED value (0) is rejected too


def _examples_base() -> Message:
    return ret.SearchTracksRequest(examples=ret.TrackExamples(positive_track_ids=["t1"]))


ENUMS: list[EnumField] = [
    EnumField(f"{GW}.GetUsageRequest.group_by", gw.GetUsageRequest, "group_by[0]",
              "group_by[0]", usage_query, required=True),
    EnumField(f"{G}.GenerateRequest.mode", gen.GenerateRequest, "mode", "mode", _generate),
    EnumField(f"{G}.GenerateRequest.audio_format", gen.GenerateRequest, "audio_format",
              "audio_format", _generate),
    EnumField(f"{G}.GenerateRequest.renderer", gen.GenerateRequest, "renderer", "renderer",
              _generate),
    EnumField(f"{G}.RenderScoreRequest.audio_format", gen.RenderScoreRequest, "audio_format",
              "audio_format", _render),
    EnumField(f"{G}.TransferTimbreRequest.output_format", gen.TransferTimbreRequest,
              "output_format", "output_format", _transfer, base=_transfer_base),
    EnumField(f"{G}.GenerateCoverRequest.image_format", gen.GenerateCoverRequest,
              "image_format", "image_format", _cover, base=_cover_base),
    EnumField(f"{G}.GenerateCoverRequest.size", gen.GenerateCoverRequest, "size", "size",
              _cover, base=_cover_base),
    EnumField(f"{G}.GenerateImageRequest.image_format", gen.GenerateImageRequest,
              "image_format", "image_format", _image, base=_image_base),
    EnumField(f"{G}.ChatMessage.role", gen.GenerateTextRequest, "chat.messages[0].role",
              "chat.messages[0].role", _text, base=_chat_base, required=True),
    EnumField(f"{G}.WriteLyricsRequest.rhyme_scheme", gen.WriteLyricsRequest, "rhyme_scheme",
              "rhyme_scheme", _lyrics, base=_lyrics_base),
    EnumField(f"{RT}.TrackExamples.space", ret.SearchTracksRequest, "examples.space",
              "examples.space", _search, base=_examples_base),
    EnumField(f"{RC}.Event.kind", rec.RecordEventRequest, "event.kind", "event.kind", _event,
              base=_event_base, required=True),
]
