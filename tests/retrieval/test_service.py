"""The retrieval service over gRPC: real server, embedded Qdrant on disk, ONNX encoder."""

from __future__ import annotations

import io
import pathlib
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import numpy as np
import pytest
import soundfile

from cadenza.kit.server import RunningServer, serve_in_process
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.retrieval.app import build_retrieval
from services.retrieval.settings import RetrievalSettings

MODEL_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / "text"
RATE = 22050
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "model_card.json").exists(),
                                reason="run `make text-model` first (make test does)")


def wav(seconds: float, *, freq: float = 220.0, bpm: float = 120.0, noise: float = 0.0,
        rate: int = RATE, fmt: str = "WAV", peak: float = 0.8) -> bytes:
    """A tone with clicks on the beat, so every feature group has something to measure."""
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * freq * t) + 0.15 * np.sin(2 * np.pi * freq * 1.5 * t)
    beat = (t % (60.0 / bpm)) < 0.02
    signal = signal + 0.5 * beat * np.sign(np.sin(2 * np.pi * 2000 * t))
    signal = signal + noise * np.random.default_rng(0).normal(size=t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, (signal / np.abs(signal).max() * peak).astype(np.float32), rate,
                    format=fmt)
    return buffer.getvalue()


def header(track_id: str, title: str = "", **fields: object) -> pb.IngestTrackRequest:
    return pb.IngestTrackRequest(header=pb.IngestHeader(metadata=pb.TrackMetadata(
        track_id=track_id, title=title or f"Track {track_id}", **fields)))


def parts(track_id: str, audio: bytes | None, **fields: object) -> list[pb.IngestTrackRequest]:
    messages = [header(track_id, **fields)]
    if audio is not None:
        step = 256 * 1024
        messages += [pb.IngestTrackRequest(audio_chunk=audio[i:i + step])
                     for i in range(0, max(len(audio), 1), step)]
    return messages


class Service:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = retrieval_pb2_grpc.RetrievalServiceStub(self.channel)

    async def ingest(self, track_id: str, audio: bytes | None, **fields: object
                     ) -> pb.IngestTrackResponse:
        async def stream() -> AsyncIterator[pb.IngestTrackRequest]:
            for message in parts(track_id, audio, **fields):
                yield message
        return await self.stub.IngestTrack(stream(), timeout=60)

    async def count(self) -> int:
        stats = await self.stub.GetCatalogStats(pb.GetCatalogStatsRequest(), timeout=10)
        return int(stats.track_count)

    async def expect(self, code: grpc.StatusCode, call: object, *fragments: str) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call  # type: ignore[misc]
        assert caught.value.code() == code, caught.value.details()
        for fragment in fragments:
            assert fragment in caught.value.details(), caught.value.details()
        return str(caught.value.details())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    yield tmp_path_factory.mktemp("retrieval")


@pytest.fixture
async def service(data_dir: pathlib.Path) -> AsyncIterator[Service]:
    settings = RetrievalSettings(port=0, metrics_port=-1, data_dir=str(data_dir),
                                 text_model_dir=str(MODEL_DIR), max_upload_bytes=2_000_000,
                                 max_audio_duration_s=30)
    app = await build_retrieval(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = Service(await serve_in_process(app, settings=settings))
    yield running
    await running.channel.close()
    await running.server.server.stop(None)
    await app.close()


async def test_ingest_extracts_features_and_reingest_replaces(service: Service) -> None:
    first = await service.ingest("tone-a", wav(8), artist="Bach", tags=["chorale"])
    assert first.replaced is False
    features = first.track.features
    assert abs(features.duration_s - 8) < 0.1
    assert abs(features.tempo_bpm - 120) / 120 < 0.05
    assert len(features.mfcc_mean) == 20 and len(features.chroma_mean) == 12
    before = await service.count()
    again = await service.ingest("tone-a", wav(8, freq=330), artist="Bach", title="Renamed")
    assert again.replaced is True
    assert await service.count() == before
    got = await service.stub.GetTrack(pb.GetTrackRequest(track_id="tone-a"), timeout=10)
    assert got.track.metadata.title == "Renamed"


async def test_all_formats_and_rates_are_accepted(service: Service) -> None:
    for fmt, rate in (("FLAC", 44100), ("OGG", 48000), ("WAV", 16000)):
        reply = await service.ingest(f"fmt-{fmt.lower()}", wav(6, rate=rate, fmt=fmt))
        assert abs(reply.track.features.duration_s - 6) < 0.2


async def test_metadata_only_tracks_are_found_by_text(service: Service) -> None:
    await service.ingest("meta-1", None, title="Lament for the drowned sailor",
                         description="slow mournful sea shanty for solo voice")
    await service.ingest("meta-2", None, title="Hoedown", description="fast fiddle dance")
    reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
        text="sad song about the ocean", filter=pb.TrackFilter(), page_size=5), timeout=10)
    ranked = [h.track.metadata.track_id for h in reply.hits]
    assert ranked.index("meta-1") < ranked.index("meta-2")
    assert not reply.hits[ranked.index("meta-1")].track.HasField("features")


async def test_like_track_ranks_by_weighted_similarity(service: Service) -> None:
    await service.ingest("sim-base", wav(8, freq=220, bpm=120))
    await service.ingest("sim-near", wav(8, freq=220, bpm=122))
    await service.ingest("sim-far", wav(8, freq=880, bpm=70, noise=0.3))
    reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
        like_track_id="sim-base", page_size=10), timeout=10)
    ranked = [h.track.metadata.track_id for h in reply.hits]
    assert "sim-base" not in ranked
    assert ranked.index("sim-near") < ranked.index("sim-far")
    for hit in reply.hits:
        assert abs(sum(hit.contributions.values()) - hit.score) < 1e-4
    assert abs(sum(reply.weights.values()) - 1) < 1e-9
    # Only rhythm counts: the score is the rhythm similarity alone.
    rhythm = await service.stub.SearchTracks(pb.SearchTracksRequest(
        like_track_id="sim-base", weights={g: 0.0 for g in reply.weights} | {"rhythm": 2.0}),
        timeout=10)
    for hit in rhythm.hits:
        assert set(k for k, v in hit.contributions.items() if abs(v) > 1e-9) <= {"rhythm"}


async def test_like_audio_and_examples(service: Service) -> None:
    await service.ingest("ex-1", wav(8, freq=220))
    await service.ingest("ex-2", wav(8, freq=225))
    await service.ingest("ex-3", wav(8, freq=900, noise=0.4))
    clip = await service.stub.SearchTracks(pb.SearchTracksRequest(
        like_audio=pb.AudioClip(data=wav(6, freq=220)), page_size=3), timeout=30)
    assert clip.hits and clip.hits[0].score > 0
    examples = await service.stub.SearchTracks(pb.SearchTracksRequest(
        examples=pb.TrackExamples(positive_track_ids=["ex-1"], negative_track_ids=["ex-3"]),
        page_size=50), timeout=10)
    ranked = [h.track.metadata.track_id for h in examples.hits]
    assert "ex-1" not in ranked and "ex-3" not in ranked and "ex-2" in ranked


async def test_pages_do_not_overlap(service: Service) -> None:
    for i in range(6):
        await service.ingest(f"page-{i}", None, title=f"Page piece {i}", genre="paging")
    seen: list[str] = []
    token = ""
    while True:
        reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
            text="page piece", filter=pb.TrackFilter(genres=["paging"]), page_size=4,
            page_token=token), timeout=10)
        seen += [h.track.metadata.track_id for h in reply.hits]
        token = reply.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"page-{i}" for i in range(6)]


BAD_AUDIO = [
    ("corrupt", b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10, grpc.StatusCode.INVALID_ARGUMENT,
     "audio"),
    ("truncated", wav(6)[:300], grpc.StatusCode.INVALID_ARGUMENT, "audio"),
    ("empty", b"", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ("unsupported", b"%PDF-1.4 not audio at all" * 40, grpc.StatusCode.INVALID_ARGUMENT,
     "audio"),
    ("silence", io.BytesIO().getvalue(), grpc.StatusCode.INVALID_ARGUMENT, ""),
    ("one-second", wav(1), grpc.StatusCode.INVALID_ARGUMENT, "s long"),
    ("too-big", b"\0" * 2_100_000, grpc.StatusCode.RESOURCE_EXHAUSTED, "2000000 bytes"),
    ("too-long", wav(40, rate=8000), grpc.StatusCode.RESOURCE_EXHAUSTED, "30 s"),
]


def _silence() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(RATE * 5, dtype=np.float32), RATE, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize(("case", "audio", "code", "fragment"), BAD_AUDIO,
                         ids=[c[0] for c in BAD_AUDIO])
async def test_bad_audio_is_rejected_and_the_catalog_is_unchanged(
        service: Service, case: str, audio: bytes, code: grpc.StatusCode,
        fragment: str) -> None:
    if case == "silence":
        audio, fragment = _silence(), "silent"
    before = await service.count()
    await service.expect(code, service.ingest(f"bad-{case}", audio), fragment)
    assert await service.count() == before
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.GetTrack(
        pb.GetTrackRequest(track_id=f"bad-{case}"), timeout=10))
    # Still serving.
    await service.stub.ListFeatureGroups(pb.ListFeatureGroupsRequest(), timeout=10)


async def test_a_failed_reingest_keeps_the_previous_version(service: Service) -> None:
    await service.ingest("keep-me", wav(6), title="Original")
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.ingest("keep-me", b"garbage" * 100, title="Broken"))
    got = await service.stub.GetTrack(pb.GetTrackRequest(track_id="keep-me"), timeout=10)
    assert got.track.metadata.title == "Original" and got.track.HasField("features")


async def test_malformed_streams_and_ids(service: Service) -> None:
    async def no_header() -> AsyncIterator[pb.IngestTrackRequest]:
        yield pb.IngestTrackRequest(audio_chunk=b"x")

    async def nothing() -> AsyncIterator[pb.IngestTrackRequest]:
        return
        yield  # pragma: no cover

    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.stub.IngestTrack(no_header(), timeout=10), "header")
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.stub.IngestTrack(nothing(), timeout=10), "header")
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.ingest("has space", None), "track_id")
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.GetTrack(
        pb.GetTrackRequest(track_id="never-ingested"), timeout=10), "never-ingested")
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.DeleteTrack(
        pb.DeleteTrackRequest(track_id="never-ingested"), timeout=10))


SEARCH_ERRORS = [
    (pb.SearchTracksRequest(text="x", filter=pb.TrackFilter(
        year=pb.IntRange(min=1900, max=1800))), "filter.year: min (1900) is greater"),
    (pb.SearchTracksRequest(text="x", filter=pb.TrackFilter(mode="dorian")), "filter.mode"),
    (pb.SearchTracksRequest(text="x", filter=pb.TrackFilter(keys=["H"])), "filter.keys[0]"),
    (pb.SearchTracksRequest(like_track_id="tone-a", weights={"timbre": -1}),
     "weights[timbre]: must be a finite number >= 0"),
    (pb.SearchTracksRequest(like_track_id="tone-a", weights={
        g: 0.0 for g in ("timbre", "harmony", "rhythm", "loudness", "brightness", "pitch",
                         "key")}), "weights: all weights are zero"),
    (pb.SearchTracksRequest(like_track_id="tone-a", weights={"tempo": 1}),
     "weights[tempo]: unknown name"),
    (pb.SearchTracksRequest(text="x", page_size=500), "page_size"),
    (pb.SearchTracksRequest(text="x", page_token="bogus"), "page_token"),
    (pb.SearchTracksRequest(like_audio=pb.AudioClip(data=wav(2))), "like_audio.data"),
    (pb.SearchTracksRequest(text="   "), "text"),
    (pb.SearchTracksRequest(text="x", filter=pb.TrackFilter(
        loudness_db=pb.FloatRange(min=-10, max=-20))), "filter.loudness_db: min (-10) is greater"),
    (pb.SearchTracksRequest(filter=pb.TrackFilter(
        brightness_hz=pb.FloatRange(min=3000, max=1000))), "filter.brightness_hz: min (3000)"),
    (pb.SearchTracksRequest(examples=pb.TrackExamples(
        positive_track_ids=[f"p{i}" for i in range(60)],
        negative_track_ids=[f"n{i}" for i in range(41)])),
     "examples: at most 100 example tracks in all (positive and negative), got 101"),
    (pb.SearchTracksRequest(examples=pb.TrackExamples(positive_track_ids=["x"], space=9)),
     "examples.space: unknown value 9"),
    (pb.SearchTracksRequest(examples=pb.TrackExamples(positive_track_ids=["a", "b"],
                                                      negative_track_ids=["c", "b"])),
     "examples.negative_track_ids[1]: track 'b' is also a positive example"),
    # Made-up cursors and offsets (one with Arabic-Indic digits, which int() accepts).
    (pb.SearchTracksRequest(page_token="c:garbage"), "page_token: is not a token"),
    (pb.SearchTracksRequest(text="x", page_token="o:\u0661\u0662"), "page_token"),
    (pb.SearchTracksRequest(text="x", page_token="o:12"), "page_token"),
]


@pytest.mark.parametrize(("request_", "fragment"), SEARCH_ERRORS,
                         ids=[f[1].split(":")[0] for f in SEARCH_ERRORS])
async def test_bad_searches_are_invalid_argument_naming_the_field(
        service: Service, request_: pb.SearchTracksRequest, fragment: str) -> None:
    if request_.WhichOneof("query") == "like_track_id":
        await service.ingest("tone-a", wav(6))
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.stub.SearchTracks(request_, timeout=30), fragment)


async def test_unknown_example_track_is_not_found(service: Service) -> None:
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.SearchTracks(
        pb.SearchTracksRequest(like_track_id="nobody-has-this"), timeout=10), "nobody-has-this")


async def test_up_to_100_examples_are_accepted(service: Service) -> None:
    # 100 is within the limit: the call gets as far as looking the tracks up.
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.SearchTracks(
        pb.SearchTracksRequest(examples=pb.TrackExamples(
            positive_track_ids=[f"p{i}" for i in range(60)],
            negative_track_ids=[f"n{i}" for i in range(40)])), timeout=10),
        "examples.positive_track_ids: track 'p0'")


SEA_AND_TECHNO = {
    "sea-p1": ("Drunken Sailor", "rousing sea shanty sung by sailors hauling ropes on a ship"),
    "sea-p2": ("Leave Her, Johnny", "sailors' work song at sea, a slow shanty of the ocean"),
    "sea-c1": ("Blow the Man Down", "traditional sea shanty about sailors and sailing ships"),
    "techno-n1": ("Warehouse Pulse", "hard techno with pounding kick drums and synthesizers"),
    "techno-c1": ("Acid Loop", "minimal techno track with an acid synthesizer bassline"),
}


async def ingest_sea_and_techno(service: Service) -> None:
    for track_id, (title, description) in SEA_AND_TECHNO.items():
        await service.ingest(track_id, None, title=title, description=description,
                             genre="text-space")


async def test_text_space_examples_rank_metadata_only_tracks(service: Service) -> None:
    await ingest_sea_and_techno(service)
    examples = pb.TrackExamples(positive_track_ids=["sea-p1", "sea-p2"],
                                negative_track_ids=["techno-n1"])
    for space in (pb.EXAMPLE_SPACE_TEXT, pb.EXAMPLE_SPACE_AUTO):
        examples.space = space
        # Over the whole catalog, and within a filter.
        reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
            examples=examples, page_size=100), timeout=10)
        ranked = [h.track.metadata.track_id for h in reply.hits]
        assert not {"sea-p1", "sea-p2", "techno-n1"} & set(ranked)
        assert ranked.index("sea-c1") < ranked.index("techno-c1")
        assert [h.score for h in reply.hits] == sorted((h.score for h in reply.hits),
                                                        reverse=True)
        assert not reply.weights and not any(h.contributions for h in reply.hits)
        filtered = await service.stub.SearchTracks(pb.SearchTracksRequest(
            examples=examples, filter=pb.TrackFilter(genres=["text-space"]),
            weights={"timbre": 5.0}, exclude_track_ids=["nothing-here"]), timeout=10)
        assert [h.track.metadata.track_id for h in filtered.hits] == ["sea-c1", "techno-c1"]
        assert filtered.hits[0].score > 0.3 > filtered.hits[1].score


async def test_text_space_example_that_is_unknown_is_not_found(service: Service) -> None:
    await ingest_sea_and_techno(service)
    await service.expect(grpc.StatusCode.NOT_FOUND, service.stub.SearchTracks(
        pb.SearchTracksRequest(examples=pb.TrackExamples(
            positive_track_ids=["sea-p1"], negative_track_ids=["no-such-song"],
            space=pb.EXAMPLE_SPACE_TEXT)), timeout=10),
        "examples.negative_track_ids: track 'no-such-song'")


async def test_auto_space_picks_audio_only_when_every_example_has_audio(
        service: Service) -> None:
    await service.ingest("auto-a1", wav(6, freq=220), genre="auto-space")
    await service.ingest("auto-a2", wav(6, freq=230), genre="auto-space")
    await service.ingest("auto-m1", None, title="Quiet song", genre="auto-space")
    await service.ingest("auto-m2", None, title="Quiet tune", genre="auto-space")
    only_auto = pb.TrackFilter(genres=["auto-space"])

    async def search(positive: list[str], negative: list[str]) -> pb.SearchTracksResponse:
        return await service.stub.SearchTracks(pb.SearchTracksRequest(
            examples=pb.TrackExamples(positive_track_ids=positive,
                                      negative_track_ids=negative),
            filter=only_auto), timeout=10)

    audio = await search(["auto-a1"], [])
    # The audio space: weights used, contributions per group, audio tracks only.
    assert [h.track.metadata.track_id for h in audio.hits] == ["auto-a2"]
    assert audio.weights and audio.hits[0].contributions
    for text in (await search(["auto-a1", "auto-m1"], []), await search(["auto-a1"],
                                                                         ["auto-m1"])):
        assert not text.weights and not any(h.contributions for h in text.hits)
        assert "auto-m2" in {h.track.metadata.track_id for h in text.hits}


async def test_audio_space_rejects_an_example_without_audio(service: Service) -> None:
    await service.ingest("audio-only-a", wav(6))
    await service.ingest("audio-only-m", None, title="Words only")
    for positive, negative, field in (
            (["audio-only-m"], [], "examples.positive_track_ids"),
            (["audio-only-a"], ["audio-only-m"], "examples.negative_track_ids")):
        await service.expect(grpc.StatusCode.INVALID_ARGUMENT, service.stub.SearchTracks(
            pb.SearchTracksRequest(examples=pb.TrackExamples(
                positive_track_ids=positive, negative_track_ids=negative,
                space=pb.EXAMPLE_SPACE_AUDIO)), timeout=10),
            f"{field}: track 'audio-only-m' has no audio")


async def test_loudness_and_brightness_filters(service: Service) -> None:
    levels = {}
    for track_id, freq, peak in (("lvl-loud-bright", 1760, 0.9), ("lvl-mid", 440, 0.3),
                                 ("lvl-quiet-dark", 110, 0.05)):
        reply = await service.ingest(track_id, wav(6, freq=freq, peak=peak), genre="levels")
        levels[track_id] = reply.track.features
    await service.ingest("lvl-no-audio", None, title="No audio", genre="levels")
    loudness = sorted(f.rms_db_mean for f in levels.values())
    brightness = sorted(f.spectral_centroid_hz for f in levels.values())
    assert loudness[0] < loudness[1] - 3 < loudness[2] - 6  # distinct enough to split

    async def matching(f: pb.TrackFilter) -> set[str]:
        f.genres.append("levels")
        reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
            filter=f, page_size=100), timeout=10)
        return {h.track.metadata.track_id for h in reply.hits}

    assert await matching(pb.TrackFilter(loudness_db=pb.FloatRange(
        min=loudness[1] - 1))) == {"lvl-loud-bright", "lvl-mid"}
    assert await matching(pb.TrackFilter(loudness_db=pb.FloatRange(
        max=loudness[0] + 1))) == {"lvl-quiet-dark"}
    assert await matching(pb.TrackFilter(brightness_hz=pb.FloatRange(
        min=brightness[2] - 1))) == {"lvl-loud-bright"}
    assert await matching(pb.TrackFilter(
        loudness_db=pb.FloatRange(min=loudness[0] - 1, max=loudness[1] + 1),
        brightness_hz=pb.FloatRange(max=brightness[1] + 1))) == {"lvl-mid", "lvl-quiet-dark"}
    # The same conditions narrow ranked searches too.
    reply = await service.stub.SearchTracks(pb.SearchTracksRequest(
        like_track_id="lvl-mid", filter=pb.TrackFilter(
            genres=["levels"], loudness_db=pb.FloatRange(min=loudness[2] - 1))), timeout=10)
    assert [h.track.metadata.track_id for h in reply.hits] == ["lvl-loud-bright"]


async def test_weights_of_any_finite_size_are_relative(service: Service) -> None:
    await service.ingest("huge-base", wav(8, freq=220, bpm=120))
    await service.ingest("huge-near", wav(8, freq=230, bpm=118))
    groups = await service.stub.ListFeatureGroups(pb.ListFeatureGroupsRequest(), timeout=10)
    relative = {g.name: float(i + 1) for i, g in enumerate(groups.groups)}
    unit = await service.stub.SearchTracks(pb.SearchTracksRequest(
        like_track_id="huge-base", weights=relative), timeout=10)
    # Scaled so that their sum overflows (28e307) or each weight is near the bottom of the
    # doubles (1e-300): the same ranking, scores and resolved weights.
    for scale in (1e307, 1e-300):
        scaled = await service.stub.SearchTracks(pb.SearchTracksRequest(
            like_track_id="huge-base", weights={k: v * scale for k, v in relative.items()}),
            timeout=10)
        assert dict(scaled.weights) == pytest.approx(dict(unit.weights))
        assert [h.score for h in scaled.hits] == pytest.approx([h.score for h in unit.hits])
        assert all(h.score != 0 for h in scaled.hits)


async def test_page_tokens_work_only_for_the_query_that_issued_them(service: Service) -> None:
    for i in range(3):
        await service.ingest(f"tok-{i}", None, title=f"Token piece {i}", genre="tokens")
    first = await service.stub.ListTracks(pb.ListTracksRequest(
        filter=pb.TrackFilter(genres=["tokens"]), page_size=2), timeout=10)
    assert first.next_page_token
    # The same query may change its page size; the next page follows on.
    second = await service.stub.ListTracks(pb.ListTracksRequest(
        filter=pb.TrackFilter(genres=["tokens"]), page_size=5,
        page_token=first.next_page_token), timeout=10)
    ids = {t.metadata.track_id for t in [*first.tracks, *second.tracks]}
    assert ids == {"tok-0", "tok-1", "tok-2"} and not second.next_page_token
    for request_ in (
            pb.ListTracksRequest(filter=pb.TrackFilter(genres=["other"]),
                                 page_token=first.next_page_token),
            pb.ListTracksRequest(page_token=first.next_page_token[:-2]),
            pb.ListTracksRequest(page_token="c:garbage")):
        await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                             service.stub.ListTracks(request_, timeout=10),
                             "page_token: is not a token from a previous response")
    # A listing token is no search offset.
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT, service.stub.SearchTracks(
        pb.SearchTracksRequest(text="token", page_token=first.next_page_token), timeout=10),
        "page_token")


@pytest.mark.parametrize("year", [0, -2**31, 10_000, 2**31 - 1])
async def test_years_outside_the_calendar_are_rejected(service: Service, year: int) -> None:
    await service.expect(grpc.StatusCode.INVALID_ARGUMENT,
                         service.ingest(f"year-{abs(year)}", None, year=year),
                         "header.metadata.year: must be 1-9999")
