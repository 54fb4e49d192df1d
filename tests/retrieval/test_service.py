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
        rate: int = RATE, fmt: str = "WAV") -> bytes:
    """A tone with clicks on the beat, so every feature group has something to measure."""
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * freq * t) + 0.15 * np.sin(2 * np.pi * freq * 1.5 * t)
    beat = (t % (60.0 / bpm)) < 0.02
    signal = signal + 0.5 * beat * np.sign(np.sin(2 * np.pi * 2000 * t))
    signal = signal + noise * np.random.default_rng(0).normal(size=t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, (signal / np.abs(signal).max() * 0.8).astype(np.float32), rate,
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
async def test_bad_audio_is_rejected_and_the_catalogue_is_unchanged(
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
