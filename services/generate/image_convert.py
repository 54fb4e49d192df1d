"""GenerateCover and GenerateImage: protobuf <-> the image room's types, with the checks."""

from __future__ import annotations

import math
import secrets

from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_enum, check_id, check_weights, cut
from services.generate.image.cover import DEFAULT_WEIGHTS
from services.generate.image.room import CoverRequest, CoverResult, ImageRequest, Images, Sampling
from services.generate.image.schedule import TRAIN_STEPS

MAX_PROMPT_CHARS = 500
MAX_TEXT_CHARS = 200
MAX_GUIDANCE = 20.0
MAX_STEPS = 250
MAX_COUNT = 8
IMAGE_SIZES = (32, 1024)
DEFAULT_IMAGE_SIZE = 256
_FORMATS: dict[int, str] = {pb.IMAGE_FORMAT_UNSPECIFIED: "png", pb.IMAGE_FORMAT_PNG: "png",
                            pb.IMAGE_FORMAT_WEBP: "webp"}
_FORMAT_LABELS = {int(n): pb.ImageFormat.Name(n) for n in pb.ImageFormat.values()}
_FORMAT_BACK = {"png": pb.IMAGE_FORMAT_PNG, "webp": pb.IMAGE_FORMAT_WEBP}
COVER_SIZES: dict[int, int] = {pb.COVER_SIZE_UNSPECIFIED: 640, pb.COVER_SIZE_640: 640,
                               pb.COVER_SIZE_3000: 3000}
_SIZE_LABELS = {int(n): pb.CoverSize.Name(n) for n in pb.CoverSize.values()}
assert MAX_STEPS <= TRAIN_STEPS


def check_sampling(sampling: pb.ImageSampling) -> Sampling:
    """Guidance in [0, 20] and steps in [1, 250], each None when unset."""
    guidance = sampling.guidance if sampling.HasField("guidance") else None
    if guidance is not None and not (math.isfinite(guidance) and 0 <= guidance <= MAX_GUIDANCE):
        raise InvalidArgument("sampling.guidance", f"must be in [0, {MAX_GUIDANCE:g}], got "
                                                   f"{guidance}")
    steps = sampling.steps if sampling.HasField("steps") else None
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise InvalidArgument("sampling.steps", f"must be in [1, {MAX_STEPS}], got {steps}")
    return Sampling(guidance, steps)


def check_text(field: str, text: str, limit: int, *, required: bool = False) -> str:
    """A prompt, title or artist: at most `limit` characters, stripped."""
    if len(text) > limit:
        raise InvalidArgument(field, f"has {len(text)} characters; at most {limit} "
                                     f"({cut(text)!r})")
    text = " ".join(text.split())
    if required and not text:
        raise InvalidArgument(field, "is required; say what to draw, e.g. 'a moon over "
                                     "the sea'")
    return text


def _seed(request: pb.GenerateCoverRequest | pb.GenerateImageRequest) -> int:
    return request.seed if request.HasField("seed") else secrets.randbits(63)


def image_request_from_pb(request: pb.GenerateImageRequest) -> ImageRequest:
    """A GenerateImageRequest as the room's ImageRequest (InvalidArgument names the field)."""
    count = request.count or 1
    if not 1 <= count <= MAX_COUNT:
        raise InvalidArgument("count", f"must be between 1 and {MAX_COUNT}, got {count}")
    size = request.size or DEFAULT_IMAGE_SIZE
    if not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
        raise InvalidArgument("size", f"must be between {IMAGE_SIZES[0]} and {IMAGE_SIZES[1]} "
                                      f"pixels, got {size}")
    return ImageRequest(
        model=request.model,
        prompt=check_text("prompt", request.prompt, MAX_PROMPT_CHARS, required=True),
        count=count, sampling=check_sampling(request.sampling), seed=_seed(request), size=size,
        image_format=check_enum("image_format", request.image_format, _FORMATS,
                                _FORMAT_LABELS))


def images_to_pb(r: Images) -> pb.GenerateImageResponse:
    """Images as GenerateImageResponse."""
    return pb.GenerateImageResponse(
        images=list(r.images), image_format=_FORMAT_BACK[r.image_format], size=r.size,
        model=r.model, model_version=r.version, seed=r.seed, guidance=r.guidance,
        steps=r.steps)


def cover_request_from_pb(request: pb.GenerateCoverRequest) -> CoverRequest:
    """A GenerateCoverRequest as the room's CoverRequest (InvalidArgument names the field)."""
    subject = request.WhichOneof("subject")
    prompt = check_text("prompt", request.prompt, MAX_PROMPT_CHARS)
    if subject is None and not prompt:
        raise InvalidArgument("subject", "give a track_id (a catalog track), midi (a "
                                         "generated piece) or at least a prompt to draw a "
                                         "cover for")
    size = check_enum("size", request.size, COVER_SIZES, _SIZE_LABELS)
    weights = check_weights("weights", dict(request.weights), DEFAULT_WEIGHTS)
    largest = max(weights.values())
    return CoverRequest(
        model=request.model,
        track_id=check_id("track_id", request.track_id) if subject == "track_id" else None,
        midi=request.midi if subject == "midi" else None,
        prompt=prompt,
        title=check_text("title", request.title, MAX_TEXT_CHARS),
        artist=check_text("artist", request.artist, MAX_TEXT_CHARS),
        weights={name: value / largest for name, value in weights.items()},
        seed=_seed(request), size=size,
        image_format=check_enum("image_format", request.image_format, _FORMATS,
                                _FORMAT_LABELS),
        sampling=check_sampling(request.sampling))


def cover_to_pb(r: CoverResult) -> pb.GenerateCoverResponse:
    """A CoverResult as GenerateCoverResponse."""
    cover = r.cover
    response = pb.GenerateCoverResponse(
        image=cover.image, image_format=_FORMAT_BACK[cover.image_format], size=cover.size,
        weights=cover.weights, seed=r.seed, model=r.model, model_version=r.version,
        factors=cover.factor_values, motif_prompt=r.motif_prompt)
    layout = cover.title_layout
    if layout is not None:
        response.title_layout.CopyFrom(pb.TitleLayout(
            lines=[*layout.title_lines, *layout.artist_lines],
            font_size_px=float(layout.title_font_px),
            wrapped=layout.wrapped, shrunk=layout.shrunk))
    return response
