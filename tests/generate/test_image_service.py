"""GenerateImage, GenerateCover and ListModels over gRPC: the real server built by the
production factory, the committed image model, ONNX Runtime; and every bad input refused
with its code and a message naming the field."""

from __future__ import annotations

import asyncio
import io
import math
import pathlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image
from prometheus_client import REGISTRY

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.kit.server import serve_in_process
from services.generate.app import build_generate
from services.generate.settings import GenerateSettings
from tests.generate.audio_files import models_folder, scale, score
from tests.generate.test_service import MODEL, MODELS_DIR
from tests.support.addresses import NOWHERE

IMAGE_MODEL = "cadenza-motif"
TEXT_DIR = MODELS_DIR.parent / "text"
pytestmark = [
    pytest.mark.skipif(not (MODELS_DIR / IMAGE_MODEL / "model.onnx").exists(),
                       reason="no image model folder (`make image-model`)"),
    pytest.mark.skipif(not (TEXT_DIR / "model_card.json").exists(),
                       reason="no text encoder (`make text-model`)"),
    pytest.mark.asyncio(loop_scope="module"),
]
IA = grpc.StatusCode.INVALID_ARGUMENT
PIECE = score((0, scale(60, 8)), (40, scale(72, 8)))
FAST = pb.ImageSampling(steps=4)   # few steps: these tests check the plumbing, not the art


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub(tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[generate_pb2_grpc.GenerateServiceAsyncStub]:
    models = models_folder(tmp_path_factory.mktemp("image"), MODEL, IMAGE_MODEL)
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=MODEL, max_concurrent=2, onnx_intra_op_threads=1,
                                text_model_dir=str(TEXT_DIR),
                                retrieval_address=NOWHERE)
    app = await build_generate(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield generate_pb2_grpc.GenerateServiceStub(channel)
    await running.server.stop(None)
    await app.close()


def _picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_list_models_shows_the_image_model_with_its_card(stub) -> None:  # type: ignore[no-untyped-def]
    listing = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
    assert listing.default_image_model == IMAGE_MODEL
    (info,) = [m for m in listing.models if m.card.name == IMAGE_MODEL]
    assert info.modality == pb.MODALITY_IMAGE and info.status == "ready"
    assert "Apache" in info.card.licence and "emoji" in info.card.training_data.lower()
    assert 1_000_000 < info.card.parameters < 20_000_000
    assert info.card.metrics["default_steps"] >= 1
    assert 0 <= info.card.metrics["default_guidance"] <= 20


async def test_images_are_seeded_per_sample_and_have_alpha(stub) -> None:  # type: ignore[no-untyped-def]
    three = await stub.GenerateImage(pb.GenerateImageRequest(
        prompt="a red apple", count=3, seed=5, size=64, sampling=FAST), timeout=60)
    assert (three.seed, three.steps, three.size, len(three.images)) == (5, 4, 64, 3)
    pictures = [_picture(x) for x in three.images]
    assert all(p.format == "PNG" and p.mode == "RGBA" and p.size == (64, 64)
               for p in pictures)
    alpha = np.asarray(pictures[0])[..., 3]
    assert alpha.min() < 128 < alpha.max()   # a motif on a transparent background
    # Sample i depends on the seed and i alone, not on how many were asked for.
    one = await stub.GenerateImage(pb.GenerateImageRequest(
        prompt="a red apple", count=1, seed=5, size=64, sampling=FAST), timeout=60)
    assert one.images[0] == three.images[0]
    assert len(set(three.images)) == 3
    other = await stub.GenerateImage(pb.GenerateImageRequest(
        prompt="a red apple", seed=6, size=64, sampling=FAST), timeout=60)
    assert other.images[0] != three.images[0]


async def test_the_prompt_and_guidance_steer_the_sample(stub) -> None:  # type: ignore[no-untyped-def]
    def pixels(reply: pb.GenerateImageResponse) -> np.ndarray:
        return np.asarray(_picture(reply.images[0]), np.float32)

    async def draw(prompt: str, guidance: float) -> np.ndarray:
        return pixels(await stub.GenerateImage(pb.GenerateImageRequest(
            prompt=prompt, seed=1, size=32, sampling=pb.ImageSampling(
                steps=4, guidance=guidance)), timeout=60))

    unguided = [await draw(p, 0.0) for p in ("a dog", "a blue car")]
    assert np.array_equal(unguided[0], unguided[1])   # guidance 0 ignores the prompt
    guided = [await draw(p, 3.0) for p in ("a dog", "a blue car")]
    assert np.abs(guided[0] - guided[1]).mean() > 1.0


async def test_a_cover_for_a_piece_is_seeded_sized_and_reports_its_drivers(stub) -> None:  # type: ignore[no-untyped-def]
    request = pb.GenerateCoverRequest(midi=PIECE, prompt="a guitar", title="Night Drive",
                                      artist="The Testers", seed=3, sampling=FAST,
                                      weights={"texture": 0.2, "motif": 0.5})
    cover = await stub.GenerateCover(request, timeout=60)
    picture = _picture(cover.image)
    assert (picture.format, picture.size, cover.size) == ("PNG", (640, 640), 640)
    assert cover.seed == 3 and cover.model == IMAGE_MODEL and cover.motif_prompt == "a guitar"
    assert dict(cover.weights) == pytest.approx({"palette": 1.0, "texture": 0.2, "pattern": 0.5,
                                                 "contrast": 0.5, "motif": 0.5,
                                                 "typography": 1.0})
    assert {"hue_deg", "density", "contrast"} <= set(cover.factors)
    assert list(cover.title_layout.lines)[:1] == ["Night Drive"]
    again = await stub.GenerateCover(request, timeout=60)
    assert again.image == cover.image
    reseeded = pb.GenerateCoverRequest()
    reseeded.CopyFrom(request)
    reseeded.seed = 4
    assert (await stub.GenerateCover(reseeded, timeout=60)).image != cover.image


async def test_a_cover_for_a_prompt_alone_has_neutral_music_factors(stub) -> None:  # type: ignore[no-untyped-def]
    cover = await stub.GenerateCover(pb.GenerateCoverRequest(
        prompt="a lighthouse", seed=2, sampling=FAST), timeout=60)
    assert cover.motif_prompt == "a lighthouse" and cover.model == IMAGE_MODEL
    assert cover.factors["density"] == pytest.approx(0.5)
    assert cover.factors["lightness"] == pytest.approx(0.5)
    assert not cover.title_layout.lines


async def test_a_cover_comes_at_3000_pixels_and_as_webp(stub) -> None:  # type: ignore[no-untyped-def]
    cover = await stub.GenerateCover(pb.GenerateCoverRequest(
        midi=PIECE, size=pb.COVER_SIZE_3000, image_format=pb.IMAGE_FORMAT_WEBP, seed=1,
        sampling=FAST, weights={"motif": 0.0}), timeout=60)
    picture = _picture(cover.image)
    assert (picture.format, picture.size) == ("WEBP", (3000, 3000))
    assert cover.model == "" and cover.motif_prompt == ""   # motif 0: no model was used


async def test_a_title_that_does_not_fit_is_wrapped_or_shrunk_never_cut(stub) -> None:  # type: ignore[no-untyped-def]
    title = ("The Extraordinarily Long and Winding Title of a Concept Album About "
             "Everything That Ever Happened on a Tuesday")
    cover = await stub.GenerateCover(pb.GenerateCoverRequest(
        midi=PIECE, title=title, artist="Somebody", seed=2, weights={"motif": 0.0}),
        timeout=60)
    layout = cover.title_layout
    assert layout.wrapped or layout.shrunk
    shown = " ".join(layout.lines)
    assert all(word in shown for word in title.split()), layout.lines
    assert "Somebody" in shown


async def test_different_music_gives_a_different_cover(stub) -> None:  # type: ignore[no-untyped-def]
    slow_low = score((32, [(36 + (i % 5), 2.0 * i, 2.0 * i + 1.9) for i in range(8)]))
    fast_high = score((73, [(84 + (i % 7), 0.125 * i, 0.125 * i + 0.1) for i in range(96)]))
    covers = [await stub.GenerateCover(pb.GenerateCoverRequest(
        midi=m, seed=1, weights={"motif": 0.0}), timeout=60) for m in (slow_low, fast_high)]
    assert covers[0].factors["density"] < covers[1].factors["density"]
    assert covers[0].factors["brightness"] < covers[1].factors["brightness"]
    a, b = (np.asarray(_picture(c.image), np.float32) for c in covers)
    assert np.abs(a - b).mean() > 10


IMAGE_CASES = [
    ("no prompt", {"prompt": ""}, "prompt: is required"),
    ("a blank prompt", {"prompt": "   "}, "prompt: is required"),
    ("a prompt over the limit", {"prompt": "x" * 501}, "prompt: has 501 characters; at most 500"),
    ("count 9", {"count": 9}, "count: must be between 1 and 8, got 9"),
    ("count -1", {"count": -1}, "count: must be between 1 and 8, got -1"),
    ("size 16", {"size": 16}, "size: must be between 32 and 1024 pixels, got 16"),
    ("steps 0", {"sampling": pb.ImageSampling(steps=0)},
     "sampling.steps: must be in [1, 250], got 0"),
    ("steps 251", {"sampling": pb.ImageSampling(steps=251)},
     "sampling.steps: must be in [1, 250], got 251"),
    ("a negative guidance", {"sampling": pb.ImageSampling(guidance=-0.5)},
     "sampling.guidance: must be in [0, 20], got -0.5"),
    ("an absurd guidance", {"sampling": pb.ImageSampling(guidance=1e9)},
     "sampling.guidance: must be in [0, 20], got 1000000000.0"),
    ("a NaN guidance", {"sampling": pb.ImageSampling(guidance=math.nan)},
     "sampling.guidance: must be in [0, 20], got nan"),
    ("an unknown format", {"image_format": 7}, "image_format: unknown value 7"),
    ("a music model", {"model": MODEL},
     "model: 'cadenza-poly' is a music model; this call needs an image model"),
]


@pytest.mark.parametrize(("case", "fields", "message"), IMAGE_CASES,
                         ids=[c[0] for c in IMAGE_CASES])
async def test_generate_image_refuses(stub, case: str, fields: dict[str, object],  # type: ignore[no-untyped-def]
                                      message: str) -> None:
    request = pb.GenerateImageRequest(**{"prompt": "a cat", **fields})  # type: ignore[arg-type]
    code, details = await _refused(stub.GenerateImage(request, timeout=30))
    assert (code, details[:len(message)]) == (IA, message), details


COVER_CASES = [
    ("neither a track, a piece nor a prompt", {"midi": None, "prompt": ""}, IA,
     "subject: give a track_id (a catalog track), midi (a generated piece) or at least a "
     "prompt"),
    ("a size not offered", {"size": 5}, IA,
     "size: unknown value 5; use one of COVER_SIZE_UNSPECIFIED, COVER_SIZE_640, "
     "COVER_SIZE_3000"),
    ("an unknown weight", {"weights": {"sparkle": 1.0}}, IA,
     "weights[sparkle]: unknown name; use one of contrast, motif, palette, pattern, texture, "
     "typography"),
    ("a negative weight", {"weights": {"palette": -1.0}}, IA,
     "weights[palette]: must be a finite number >= 0, got -1.0"),
    ("an infinite weight", {"weights": {"motif": math.inf}}, IA,
     "weights[motif]: must be a finite number >= 0, got inf"),
    ("all weights zero", {"weights": {f: 0.0 for f in (
        "palette", "texture", "pattern", "contrast", "motif", "typography")}}, IA,
     "weights: all weights are zero"),
    ("steps over the limit", {"sampling": pb.ImageSampling(steps=1000)}, IA,
     "sampling.steps: must be in [1, 250], got 1000"),
    ("a negative guidance", {"sampling": pb.ImageSampling(guidance=-1.0)}, IA,
     "sampling.guidance: must be in [0, 20], got -1.0"),
    ("a prompt over the limit", {"prompt": "y" * 600}, IA,
     "prompt: has 600 characters; at most 500"),
    ("a title over the limit", {"title": "z" * 201}, IA,
     "title: has 201 characters; at most 200"),
    ("a bad track id", {"midi": None, "track_id": "a b"}, IA,
     "track_id: 'a b' is not a valid id"),
    ("a MIDI with no notes", {"midi": score()}, IA, "midi: has no pitched notes"),
    ("not a MIDI", {"midi": b"MThd nope"}, IA, "midi: is not a readable Standard MIDI File"),
    ("an unknown model", {"model": "nope"}, grpc.StatusCode.NOT_FOUND,
     "model 'nope' does not exist"),
    ("retrieval down", {"midi": None, "track_id": "some-track"},
     grpc.StatusCode.UNAVAILABLE, "retrieval"),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), COVER_CASES,
                         ids=[c[0] for c in COVER_CASES])
async def test_generate_cover_refuses(stub, case: str, fields: dict[str, object],  # type: ignore[no-untyped-def]
                                      code: grpc.StatusCode, message: str) -> None:
    request = pb.GenerateCoverRequest(midi=PIECE, sampling=FAST)
    for name, value in fields.items():
        if value is None:
            request.ClearField(name)  # type: ignore[arg-type]
        elif name == "weights":
            request.weights.update(value)  # type: ignore[call-overload]
        elif isinstance(value, pb.ImageSampling):
            request.sampling.CopyFrom(value)
        else:
            setattr(request, name, value)
    got_code, details = await _refused(stub.GenerateCover(request, timeout=30))
    assert got_code == code and message in details, details


async def test_a_cancelled_sampling_stops_and_frees_its_slot(stub) -> None:  # type: ignore[no-untyped-def]
    # Two slots held by long samplings (8 images, 250 steps: minutes), cancelled: the
    # in-flight gauge falls to zero and a new call gets a slot at once.
    before = _cancelled()
    calls = [stub.GenerateImage(pb.GenerateImageRequest(
        prompt="a long wait", count=8, seed=i, sampling=pb.ImageSampling(steps=250)),
        timeout=300) for i in range(2)]
    await _until(lambda: _in_flight() == 2)
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await stub.GenerateImage(pb.GenerateImageRequest(prompt="a cat", sampling=FAST),
                                 timeout=30)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()
    await _until(lambda: _in_flight() == 0)
    assert _cancelled() == before + 2
    started = asyncio.get_running_loop().time()
    reply = await stub.GenerateImage(pb.GenerateImageRequest(prompt="a cat", sampling=FAST),
                                     timeout=30)
    assert len(reply.images) == 1
    assert asyncio.get_running_loop().time() - started < 20


async def test_without_the_image_model_image_calls_name_the_make_target(
        tmp_path: pathlib.Path) -> None:
    models = models_folder(tmp_path, MODEL)
    settings = GenerateSettings(port=0, metrics_port=-1, models_dir=str(models),
                                default_model=MODEL, onnx_intra_op_threads=1)
    app = await build_generate(settings)
    assert app.warmup is not None and app.close is not None
    await app.warmup()
    running = await serve_in_process(app, settings=settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = generate_pb2_grpc.GenerateServiceStub(channel)
            code, details = await _refused(stub.GenerateImage(
                pb.GenerateImageRequest(prompt="a cat"), timeout=30))
            assert code == grpc.StatusCode.FAILED_PRECONDITION
            assert "make image-model" in details
            # A cover without a motif needs no image model.
            cover = await stub.GenerateCover(pb.GenerateCoverRequest(
                midi=PIECE, weights={"motif": 0.0}), timeout=30)
            assert _picture(cover.image).size == (640, 640)
    finally:
        await running.server.stop(None)
        await app.close()


async def _refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value.code(), failure.value.details() or ""


def _in_flight() -> float:
    return REGISTRY.get_sample_value("cadenza_generate_in_flight", {"model": IMAGE_MODEL}) or 0.0


def _cancelled() -> float:
    return REGISTRY.get_sample_value(
        "cadenza_generate_generations_total",
        {"model": IMAGE_MODEL, "mode": "image", "outcome": "cancelled"}) or 0.0


async def _until(condition: object, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
