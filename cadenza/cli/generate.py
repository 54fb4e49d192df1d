"""`cadenza generate -o out.mid|.wav|.flac`: new music from our models."""

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

MODES = {"scratch": pb.GENERATION_MODE_FROM_SCRATCH, "continue": pb.GENERATION_MODE_CONTINUE,
         "harmonize": pb.GENERATION_MODE_HARMONIZE}
# The output file's extension decides what is asked for and written.
OUTPUTS = {".mid": pb.AUDIO_FORMAT_UNSPECIFIED, ".midi": pb.AUDIO_FORMAT_UNSPECIFIED,
           ".wav": pb.AUDIO_FORMAT_WAV, ".flac": pb.AUDIO_FORMAT_FLAC}
# A long piece on CPU takes minutes; the common 30 s deadline would cut it off.
GENERATE_TIMEOUT_S = 600.0


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `generate` and `models` commands."""
    # Its own copy of the connection options, so the longer deadline stays its own.
    connection_options = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(connection_options)
    connection_options.set_defaults(timeout=GENERATE_TIMEOUT_S)
    gen = subparsers.add_parser(
        "generate", parents=[connection_options],
        help="write new music to a MIDI, WAV or FLAC file",
        description="Generates a piece and writes it to -o: MIDI for .mid, rendered audio "
                    "for .wav or .flac. Prints the model, seed and originality. The "
                    f"deadline defaults to {GENERATE_TIMEOUT_S:g} s here.")
    gen.add_argument("-o", "--output", type=pathlib.Path, required=True,
                     help="out.mid, out.wav or out.flac")
    gen.add_argument("--mode", choices=sorted(MODES),
                     help="default: continue with --primer, scratch without")
    gen.add_argument("--primer", type=pathlib.Path, metavar="FILE.mid",
                     help="MIDI file to continue, or whose top voice to harmonise")
    length = gen.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int)
    length.add_argument("--seconds", type=float)
    gen.add_argument("--tempo", type=float, metavar="BPM")
    gen.add_argument("--key", default="", help='e.g. "C", "F# minor", "Bb major"')
    gen.add_argument("--time-signature", default="", metavar="N/D", help="e.g. 3/4")
    gen.add_argument("--program", type=int, nargs="+", action="extend", default=[],
                     metavar="P", help="General MIDI program per voice, highest first")
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--model", default="", help="default: the service's default model")
    gen.set_defaults(func=run_generate)


def generate_request(args: argparse.Namespace) -> pb.GenerateRequest:
    """The request the arguments describe; ValueError for a bad output name or primer."""
    suffix = args.output.suffix.lower()
    if suffix not in OUTPUTS:
        raise ValueError(f"-o {args.output}: the name must end in "
                         f"{', '.join(sorted(OUTPUTS))}")
    mode = args.mode or ("continue" if args.primer else "scratch")
    request = pb.GenerateRequest(
        model=args.model, mode=MODES[mode], key=args.key, time_signature=args.time_signature,
        programs=args.program, audio_format=OUTPUTS[suffix])
    if args.primer is not None:
        try:
            request.primer_midi = args.primer.read_bytes()
        except OSError as error:
            raise ValueError(f"--primer {args.primer}: {error.strerror}") from error
    if args.bars is not None:
        request.bars = args.bars
    if args.seconds is not None:
        request.seconds = args.seconds
    if args.tempo is not None:
        request.tempo_bpm = args.tempo
    if args.temperature is not None:
        request.sampling.temperature = args.temperature
    request.sampling.top_k = args.top_k
    if args.top_p is not None:
        request.sampling.top_p = args.top_p
    if args.seed is not None:
        if not 0 <= args.seed < 2**64:
            raise ValueError(f"--seed {args.seed}: must be in 0 .. 2^64-1")
        request.seed = args.seed
    return request


def run_generate(args: argparse.Namespace, conn: Connection) -> int:
    """Streams a generation, writing the MIDI (and audio, when asked) it returns."""
    try:
        request = generate_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    progress = sys.stderr.isatty() and not args.json
    events = 0
    result = None
    try:
        for reply in stub.Generate(request, metadata=conn.metadata, timeout=conn.timeout_s):
            if reply.HasField("event"):
                events += 1
                if progress:
                    print(f"\rgenerating: {events} notes", end="", file=sys.stderr, flush=True)
            elif reply.HasField("result"):
                result = reply.result
    except grpc.RpcError as error:
        if progress and events:
            print(file=sys.stderr)
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if progress and events:
        print(file=sys.stderr)
    if result is None:
        print("the stream ended without a result", file=sys.stderr)
        return 1
    data = result.audio if request.audio_format else result.midi
    if not data:
        print("the result carries no "
              f"{'audio' if request.audio_format else 'MIDI'}", file=sys.stderr)
        return 1
    args.output.write_bytes(data)
    _print_result(args, result, events, len(data))
    return 0


def _print_result(args: argparse.Namespace, result: pb.GenerationResult, events: int,
                  written_bytes: int) -> None:
    if args.json:
        summary = MessageToDict(result, preserving_proto_field_name=True,
                                always_print_fields_with_no_presence=True)
        summary.pop("midi", None)
        summary.pop("audio", None)
        print(json.dumps(summary | {"events": events, "output": str(args.output),
                                    "output_bytes": written_bytes}, indent=2))
        return
    originality = result.originality
    source = f" (from {originality.closest_source})" if originality.closest_source else ""
    print(f"model {result.model} {result.model_version}, seed {result.seed}")
    print(f"{result.duration_s:.1f} s of music, {events} notes, "
          f"{result.tokens_generated} tokens")
    print(f"originality: longest copied run {originality.longest_copied_run_notes} "
          f"notes{source}")
    size = f"{written_bytes} bytes" if written_bytes < 10240 else f"{written_bytes // 1024} KiB"
    print(f"wrote {args.output} ({size})")
