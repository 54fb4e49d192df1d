"""`cadenza text`, `cadenza lyrics` and `cadenza describe`: words from the text model."""

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

SCHEMES = {"AABB": pb.RHYME_SCHEME_AABB, "ABAB": pb.RHYME_SCHEME_ABAB,
           "ABCB": pb.RHYME_SCHEME_ABCB, "AAAA": pb.RHYME_SCHEME_AAAA}
# A 135M model on two cores writes tens of tokens a second: give it minutes.
TEXT_TIMEOUT_S = 300.0


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `text`, `lyrics` and `describe` commands."""
    options = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(options)
    options.set_defaults(timeout=TEXT_TIMEOUT_S)
    options.add_argument("--model", default="", help="default: the default text model")
    options.add_argument("--seed", type=int)

    text = subparsers.add_parser("text", parents=[options], help="stream text from the LLM",
                                 description="Streams the model's answer to a prompt.")
    text.add_argument("prompt", help="what to ask (a user message)")
    text.add_argument("--system", default="", help="a system message before the prompt")
    text.add_argument("--raw", action="store_true",
                      help="continue the prompt as raw text, without the chat template")
    text.add_argument("--max-tokens", type=int, help="default: the service's (256)")
    text.add_argument("--temperature", type=float, help="0 = greedy")
    text.add_argument("--top-k", type=int, default=0)
    text.add_argument("--top-p", type=float)
    text.add_argument("--stop", action="append", default=[], help="a stop sequence")
    text.set_defaults(func=run_text)

    lyrics = subparsers.add_parser(
        "lyrics", parents=[options], help="lyrics for a melody, or for sections",
        description="Writes lyrics: one line per phrase of --melody (one syllable per note), "
                    "or --lines lines of --syllables syllables. With -o, writes the melody "
                    "as a MIDI file with a lyric on every note.")
    lyrics.add_argument("--theme", required=True)
    lyrics.add_argument("--scheme", choices=sorted(SCHEMES), default="AABB")
    lyrics.add_argument("--melody", type=pathlib.Path, metavar="TUNE.mid")
    lyrics.add_argument("--lines", type=int, default=4, help="without --melody")
    lyrics.add_argument("--syllables", type=int, default=8, help="without --melody")
    lyrics.add_argument("--temperature", type=float)
    lyrics.add_argument("-o", "--output", type=pathlib.Path, metavar="SONG.mid")
    lyrics.set_defaults(func=run_lyrics)

    describe = subparsers.add_parser(
        "describe", parents=[options], help="titles and a description of a track",
        description="Title suggestions and a description grounded in the track's features.")
    describe.add_argument("track", help="a catalog track id, or a .mid file")
    describe.add_argument("--titles", type=int, default=0, help="how many (default 3)")
    describe.set_defaults(func=run_describe)


def _fail(error: grpc.RpcError) -> int:
    print(f"{error.code().name}: {error.details()}", file=sys.stderr)
    return 1


def _seed(args: argparse.Namespace, message: pb.GenerateTextRequest | pb.WriteLyricsRequest
          | pb.DescribeMusicRequest) -> None:
    if args.seed is not None:
        if not 0 <= args.seed < 2**64:
            raise ValueError(f"--seed {args.seed}: must be in 0 .. 2^64-1")
        message.seed = args.seed


def text_request(args: argparse.Namespace) -> pb.GenerateTextRequest:
    """The GenerateTextRequest the arguments describe."""
    request = pb.GenerateTextRequest(model=args.model, stop=args.stop)
    if args.max_tokens is not None:
        request.max_tokens = args.max_tokens
    if args.raw:
        request.prompt = args.prompt
    else:
        if args.system:
            request.chat.messages.add(role=pb.CHAT_ROLE_SYSTEM, content=args.system)
        request.chat.messages.add(role=pb.CHAT_ROLE_USER, content=args.prompt)
    if args.temperature is not None:
        request.sampling.temperature = args.temperature
    request.sampling.top_k = args.top_k
    if args.top_p is not None:
        request.sampling.top_p = args.top_p
    _seed(args, request)
    return request


def run_text(args: argparse.Namespace, conn: Connection) -> int:
    """Streams the completion to stdout (or prints it as JSON at the end)."""
    try:
        request = text_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    result = None
    try:
        for reply in stub.GenerateText(request, metadata=conn.metadata,
                                       timeout=conn.timeout_s):
            if reply.HasField("result"):
                result = reply.result
            elif not args.json:
                print(reply.delta, end="", flush=True)
    except grpc.RpcError as error:
        return _fail(error)
    if result is None:
        print("the stream ended without a result", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(MessageToDict(result, preserving_proto_field_name=True), indent=2))
    else:
        print()
        print(f"[{result.model}, seed {result.seed}, "
              f"{pb.FinishReason.Name(result.finish_reason).removeprefix('FINISH_REASON_')}"
              f", {result.usage.prompt_tokens} + {result.usage.completion_tokens} tokens]",
              file=sys.stderr)
    return 0


def lyrics_request(args: argparse.Namespace) -> pb.WriteLyricsRequest:
    """The WriteLyricsRequest the arguments describe."""
    request = pb.WriteLyricsRequest(model=args.model, theme=args.theme,
                                    rhyme_scheme=SCHEMES[args.scheme])
    if args.melody is not None:
        try:
            request.melody_midi = args.melody.read_bytes()
        except OSError as error:
            raise ValueError(f"--melody {args.melody}: {error.strerror}") from error
    else:
        request.structure.sections.add(name="verse", lines=args.lines,
                                       syllables_per_line=args.syllables)
    if args.temperature is not None:
        request.temperature = args.temperature
    _seed(args, request)
    return request


def run_lyrics(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the lyrics (hyphenated under --json) and writes the karaoke MIDI with -o."""
    try:
        request = lyrics_request(args)
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.WriteLyrics(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    if args.output is not None:
        if not reply.midi:
            print("no MIDI to write: give --melody", file=sys.stderr)
            return 1
        args.output.write_bytes(reply.midi)
    if args.json:
        summary = MessageToDict(reply, preserving_proto_field_name=True)
        summary.pop("midi", None)
        print(json.dumps(summary, indent=2))
    else:
        print(reply.text)
        for line in reply.lines:
            print("  " + " ".join(line.syllables), file=sys.stderr)
        if args.output is not None:
            print(f"wrote {args.output}", file=sys.stderr)
    return 0


def run_describe(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the titles, the description and the facts it rests on."""
    request = pb.DescribeMusicRequest(model=args.model, title_count=args.titles)
    path = pathlib.Path(args.track)
    try:
        if path.suffix.lower() in (".mid", ".midi") and path.is_file():
            request.midi = path.read_bytes()
        else:
            request.track_id = args.track
        _seed(args, request)
    except (OSError, ValueError) as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    stub = generate_pb2_grpc.GenerateServiceStub(conn.channel)
    try:
        reply = stub.DescribeMusic(request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return 0
    for title in reply.titles:
        print(f"- {title}")
    print()
    print(reply.description)
    f = reply.facts
    facts = [f"{f.key} {f.mode}".strip(), f.tempo_word and f"{f.tempo_word} ({f.tempo_bpm:.0f} "
             "bpm)", f.loudness_word, f.brightness_word, ", ".join(f.instruments)]
    print(f"\nfacts: {'; '.join(x for x in facts if x)}", file=sys.stderr)
    return 0
