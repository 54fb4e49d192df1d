"""`cadenza synth` and `cadenza transfer`: scores and recordings played by the synthesiser."""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from collections.abc import Mapping

import grpc
from google.protobuf.json_format import MessageToDict

from cadenza.cli.connection import Connection
from cadenza.cli.connection import add_arguments as add_connection_arguments
from cadenza.generate.v1 import generate_pb2 as pb
from cadenza.generate.v1 import generate_pb2_grpc

# The output file's extension picks the container.
OUTPUTS: dict[str, pb.AudioFormat.ValueType] = {".wav": pb.AUDIO_FORMAT_WAV,
                                                ".flac": pb.AUDIO_FORMAT_FLAC}
# A long score on CPU takes a while; the common 30 s deadline would cut it off.
AUDIO_TIMEOUT_S = 300.0


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `synth` and `transfer` commands."""
    connection_options = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(connection_options)
    connection_options.set_defaults(timeout=AUDIO_TIMEOUT_S)
    synth = subparsers.add_parser(
        "synth", parents=[connection_options],
        help="render a MIDI file with the neural synthesiser",
        description="Renders a Standard MIDI File with the trained synthesiser: every voice "
                    "with --instrument or --mix, else each voice with the instrument "
                    "nearest its General MIDI program.")
    synth.add_argument("midi", type=pathlib.Path, help="piece.mid")
    _timbre_arguments(synth, required=False)
    synth.add_argument("--voice", action="append", default=[], metavar="TIMBRE",
                       help="a timbre per voice, highest first (an instrument name or a mix "
                            "like violin=0.7,flute=0.3); repeat for each voice")
    _common_arguments(synth)
    synth.set_defaults(func=run_synth)

    transfer = subparsers.add_parser(
        "transfer", parents=[connection_options],
        help="resynthesise a monophonic recording as another instrument",
        description="Tracks the pitch and loudness of a sung, hummed, whistled or played "
                    "recording and plays them with the chosen instrument or mix.")
    transfer.add_argument("recording", type=pathlib.Path, help="hum.wav (wav, flac, ogg, mp3)")
    _timbre_arguments(transfer, required=True)
    transfer.add_argument("--shift", type=float, metavar="SEMITONES",
                          help="pitch shift, -24 to 24 (default: octaves into the range)")
    _common_arguments(transfer)
    transfer.set_defaults(func=run_transfer)


def _timbre_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--instrument", help="e.g. violin (`cadenza models --json` lists them)")
    group.add_argument("--mix", metavar="NAME=W,...", help="e.g. violin=0.7,flute=0.3")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=pathlib.Path, required=True,
                        help="out.wav or out.flac")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--model", default="", help="default: the service's audio model")


def parse_timbre(text: str) -> pb.Timbre:
    """"violin" or "violin=0.7,flute=0.3" as a Timbre; ValueError when malformed."""
    if "=" not in text:
        if not text.strip():
            raise ValueError("an empty instrument name")
        return pb.Timbre(instrument=text.strip())
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError as error:
            raise ValueError(f"{part!r}: the weight must be a number (name=weight)") from error
        if not name.strip() or name.strip() in weights or not math.isfinite(weight):
            raise ValueError(f"{part!r}: give each instrument once, as name=weight")
        weights[name.strip()] = weight
    return pb.Timbre(mix=pb.TimbreMix(weights=weights))


def _chosen_timbre(args: argparse.Namespace) -> pb.Timbre | None:
    if args.instrument is not None:
        return pb.Timbre(instrument=args.instrument.strip())
    return parse_timbre(args.mix) if args.mix is not None else None


def _output_format(path: pathlib.Path) -> pb.AudioFormat.ValueType:
    suffix = path.suffix.lower()
    if suffix not in OUTPUTS:
        raise ValueError(f"-o {path}: the name must end in {', '.join(sorted(OUTPUTS))}")
    return OUTPUTS[suffix]


def _seed(args: argparse.Namespace, request: pb.RenderScoreRequest | pb.TransferTimbreRequest
          ) -> None:
    if args.seed is not None:
        if not 0 <= args.seed < 2**64:
            raise ValueError(f"--seed {args.seed}: must be in 0 .. 2^64-1")
        request.seed = args.seed


def _read(path: pathlib.Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{what} {path}: {error.strerror}") from error


def synth_request(args: argparse.Namespace) -> pb.RenderScoreRequest:
    """The RenderScoreRequest the arguments describe; ValueError for bad arguments."""
    request = pb.RenderScoreRequest(model=args.model, midi=_read(args.midi, "midi"),
                                    audio_format=_output_format(args.output))
    timbre = _chosen_timbre(args)
    if timbre is not None:
        request.timbre.CopyFrom(timbre)
    request.voice_timbres.extend(parse_timbre(text) for text in args.voice)
    _seed(args, request)
    return request


def transfer_request(args: argparse.Namespace) -> pb.TransferTimbreRequest:
    """The TransferTimbreRequest the arguments describe; ValueError for bad arguments."""
    timbre = _chosen_timbre(args)
    if timbre is None:
        raise ValueError("give --instrument NAME or --mix NAME=W,...")
    request = pb.TransferTimbreRequest(
        model=args.model, audio=_read(args.recording, "recording"),
        audio_format=args.recording.suffix.lower().lstrip("."), timbre=timbre,
        output_format=_output_format(args.output))
    if args.shift is not None:
        request.shift_semitones = args.shift
    _seed(args, request)
    return request


def run_synth(args: argparse.Namespace, conn: Connection) -> int:
    """Renders the MIDI file and writes the audio."""
    try:
        request = synth_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.RenderScore(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    args.output.write_bytes(reply.audio)
    voices = "; ".join(f"voice {v.voice}: {_weights(v.weights)} ({v.notes} notes)"
                       for v in reply.voices)
    return _report(args, reply, voices)


def run_transfer(args: argparse.Namespace, conn: Connection) -> int:
    """Resynthesises the recording and writes the audio."""
    try:
        request = transfer_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.TransferTimbre(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    args.output.write_bytes(reply.audio)
    detail = (f"{_weights(reply.weights)}, shifted {reply.shift_semitones:+g} semitones; "
              f"{reply.voiced_fraction:.0%} of frames pitched, median "
              f"{reply.median_f0_hz:.1f} Hz")
    return _report(args, reply, detail)


def _weights(weights: Mapping[str, float]) -> str:
    items = sorted(weights.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name}={weight:.3g}" for name, weight in items)


def _report(args: argparse.Namespace, reply: pb.RenderScoreResponse | pb.TransferTimbreResponse,
            detail: str) -> int:
    if args.json:
        summary = MessageToDict(reply, preserving_proto_field_name=True)
        summary.pop("audio", None)
        print(json.dumps(summary | {"output": str(args.output),
                                    "output_bytes": len(reply.audio)}, indent=2))
        return 0
    print(f"model {reply.model} {reply.model_version}, seed {reply.seed}")
    print(f"{reply.duration_s:.1f} s at {reply.sample_rate_hz} Hz: {detail}")
    print(f"wrote {args.output} ({len(reply.audio) // 1024} KiB)")
    return 0
