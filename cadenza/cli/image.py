"""`cadenza cover` and `cadenza image`: cover art from the music, and images for a prompt."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from cadenza.cli.connection import Connection
from cadenza.cli.connection import add_arguments as add_connection_arguments
from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc

# The output file's extension picks the format.
OUTPUTS: dict[str, pb.ImageFormat.ValueType] = {".png": pb.IMAGE_FORMAT_PNG,
                                                ".webp": pb.IMAGE_FORMAT_WEBP}
COVER_SIZES = {640: pb.COVER_SIZE_640, 3000: pb.COVER_SIZE_3000}
# Sampling 50 DDIM steps on one CPU core takes a few seconds per image.
IMAGE_TIMEOUT_S = 120.0


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `cover` and `image` commands."""
    options = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(options)
    options.set_defaults(timeout=IMAGE_TIMEOUT_S)
    cover = subparsers.add_parser(
        "cover", parents=[options], help="cover art for a catalog track or a MIDI file",
        description="Composes a square cover from the music's features (palette from key "
                    "and mode, texture from timbre and brightness, pattern from tempo, "
                    "contrast from loudness), a motif from the image model and the title.")
    cover.add_argument("subject", help="a catalog track id, or a .mid file of a piece")
    cover.add_argument("--prompt", default="", help="what the motif shows")
    cover.add_argument("--title", default="", help="default: the track's title")
    cover.add_argument("--artist", default="", help="default: the track's artist")
    cover.add_argument("--weight", action="append", default=[], metavar="FACTOR=W",
                       help="palette, texture, pattern, contrast, motif or typography "
                            "(repeatable), e.g. --weight motif=0.5")
    cover.add_argument("--size", type=int, default=640, help="640 (default) or 3000")
    _sampling_arguments(cover)
    cover.set_defaults(func=run_cover)

    image = subparsers.add_parser(
        "image", parents=[options], help="images for a prompt from the image model",
        description="Samples the diffusion model for a prompt. With -n above 1 the files "
                    "are numbered: moon.png -> moon-1.png, moon-2.png, ...")
    image.add_argument("prompt", help='e.g. "a moon over the sea"')
    image.add_argument("-n", "--count", type=int, default=1, help="1-8 images")
    image.add_argument("--size", type=int, default=256, help="pixels square, 32-1024")
    _sampling_arguments(image)
    image.set_defaults(func=run_image)


def _sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=pathlib.Path, required=True,
                        help="out.png or out.webp")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance", type=float, help="0-20 (default: the model's)")
    parser.add_argument("--steps", type=int, help="DDIM steps, 1-250 (default: the model's)")
    parser.add_argument("--model", default="", help="default: the service's image model")


def _output_format(path: pathlib.Path) -> pb.ImageFormat.ValueType:
    suffix = path.suffix.lower()
    if suffix not in OUTPUTS:
        raise ValueError(f"-o {path}: the name must end in {', '.join(sorted(OUTPUTS))}")
    return OUTPUTS[suffix]


def _sampling(args: argparse.Namespace) -> pb.ImageSampling:
    sampling = pb.ImageSampling()
    if args.guidance is not None:
        sampling.guidance = args.guidance
    if args.steps is not None:
        sampling.steps = args.steps
    return sampling


def _seed(args: argparse.Namespace, request: pb.GenerateCoverRequest | pb.GenerateImageRequest
          ) -> None:
    if args.seed is not None:
        if not 0 <= args.seed < 2**64:
            raise ValueError(f"--seed {args.seed}: must be in 0 .. 2^64-1")
        request.seed = args.seed


def parse_weights(items: list[str]) -> dict[str, float]:
    """FACTOR=W arguments as a map; ValueError for a malformed one."""
    weights: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError as error:
            raise ValueError(f"--weight {item!r}: write FACTOR=NUMBER") from error
        if not sep or not name.strip():
            raise ValueError(f"--weight {item!r}: write FACTOR=NUMBER")
    return weights


def cover_request(args: argparse.Namespace) -> pb.GenerateCoverRequest:
    """The GenerateCoverRequest the arguments describe; ValueError for bad arguments."""
    if args.size not in COVER_SIZES:
        raise ValueError(f"--size {args.size}: covers come at 640 or 3000 pixels")
    request = pb.GenerateCoverRequest(
        model=args.model, prompt=args.prompt, title=args.title, artist=args.artist,
        weights=parse_weights(args.weight), size=COVER_SIZES[args.size],
        image_format=_output_format(args.output), sampling=_sampling(args))
    path = pathlib.Path(args.subject)
    if path.suffix.lower() in (".mid", ".midi"):
        try:
            request.midi = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{path}: {error.strerror}") from error
    else:
        request.track_id = args.subject
    _seed(args, request)
    return request


def image_request(args: argparse.Namespace) -> pb.GenerateImageRequest:
    """The GenerateImageRequest the arguments describe; ValueError for bad arguments."""
    request = pb.GenerateImageRequest(model=args.model, prompt=args.prompt, count=args.count,
                                      size=args.size, image_format=_output_format(args.output),
                                      sampling=_sampling(args))
    _seed(args, request)
    return request


def output_paths(path: pathlib.Path, count: int) -> list[pathlib.Path]:
    """The files for `count` images: the path itself for one, numbered for more."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def run_cover(args: argparse.Namespace, conn: Connection) -> int:
    """Composes the cover and writes it."""
    try:
        request = cover_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.GenerateCover(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    args.output.write_bytes(reply.image)
    if args.json:
        return _json(reply, [args.output])
    factors = ", ".join(f"{k}={v:.3g}" for k, v in sorted(reply.factors.items()))
    weights = ", ".join(f"{k}={v:.3g}" for k, v in sorted(reply.weights.items()))
    print(f"seed {reply.seed}; weights {weights}")
    print(f"factors: {factors}")
    if reply.motif_prompt:
        print(f"motif: {reply.motif_prompt!r} ({reply.model} {reply.model_version})")
    if reply.title_layout.lines:
        layout = reply.title_layout
        how = " ".join(w for w, on in (("wrapped", layout.wrapped), ("shrunk", layout.shrunk))
                       if on) or "as is"
        print(f"title: {' / '.join(layout.lines)} ({layout.font_size_px:.0f} px, {how})")
    print(f"wrote {args.output} ({reply.size}x{reply.size}, {len(reply.image) // 1024} KiB)")
    return 0


def run_image(args: argparse.Namespace, conn: Connection) -> int:
    """Samples the images and writes them."""
    try:
        request = image_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.GenerateImage(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    paths = output_paths(args.output, len(reply.images))
    for path, data in zip(paths, reply.images, strict=True):
        path.write_bytes(data)
    if args.json:
        return _json(reply, paths)
    print(f"model {reply.model} {reply.model_version}, seed {reply.seed}, guidance "
          f"{reply.guidance:g}, {reply.steps} steps")
    for path in paths:
        print(f"wrote {path} ({reply.size}x{reply.size})")
    return 0


def _json(reply: pb.GenerateCoverResponse | pb.GenerateImageResponse,
          paths: list[pathlib.Path]) -> int:
    summary = MessageToDict(reply, preserving_proto_field_name=True)
    summary.pop("image", None)
    summary.pop("images", None)
    print(json.dumps(summary | {"outputs": [str(p) for p in paths]}, indent=2))
    return 0
