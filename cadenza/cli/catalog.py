"""`cadenza ingest PATH...` and `cadenza track ID`: put music in, look at what is there."""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import re
import sys
from collections.abc import Iterable, Iterator

import grpc
from google.protobuf.json_format import MessageToDict
from tqdm import tqdm

from cadenza.cli.connection import Connection
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
CHUNK_BYTES = 512 * 1024


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `ingest` and `track` commands."""
    ingest = subparsers.add_parser("ingest", parents=[common],
                                   help="ingest audio files or folders into the catalog")
    ingest.add_argument("paths", nargs="+", type=pathlib.Path)
    ingest.add_argument("--force", action="store_true",
                        help="re-ingest files even when unchanged")
    ingest.set_defaults(func=run_ingest)
    track = subparsers.add_parser("track", parents=[common], help="show one track")
    track.add_argument("track_id")
    track.set_defaults(func=run_track)


def audio_files(paths: list[pathlib.Path]) -> Iterator[pathlib.Path]:
    """Every audio file under the given files and folders, sorted, each once."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path


def track_id_for(path: pathlib.Path) -> str:
    """A stable id from the file's path: readable, and unique by a short hash."""
    resolved = str(path.resolve())
    stem = re.sub(r"[^A-Za-z0-9._:-]+", "-", path.stem).strip("-")[:100] or "track"
    return f"{stem}-{hashlib.sha1(resolved.encode()).hexdigest()[:10]}"


def read_tags(path: pathlib.Path) -> pb.TrackMetadata:
    """Title, artist, album, year and genre from the file's tags (mutagen)."""
    import mutagen

    meta = pb.TrackMetadata(title=path.stem)
    try:
        tags = mutagen.File(path, easy=True)
    except mutagen.MutagenError:
        tags = None
    if tags is not None and tags.tags is not None:
        def first(key: str) -> str:
            values = tags.tags.get(key) or [""]
            return str(values[0]).strip()
        meta.title = first("title") or path.stem
        meta.artist, meta.album, meta.genre = first("artist"), first("album"), first("genre")
        year = re.match(r"\d{4}", first("date"))
        if year:
            meta.year = int(year.group())
    return meta


def ingest_requests(meta: pb.TrackMetadata, audio_format: str,
                    chunks: Iterable[bytes]) -> Iterator[pb.IngestTrackRequest]:
    """The IngestTrack stream: the header, then the audio chunks as given."""
    yield pb.IngestTrackRequest(header=pb.IngestHeader(metadata=meta, audio_format=audio_format))
    for chunk in chunks:
        yield pb.IngestTrackRequest(audio_chunk=chunk)


def file_chunks(path: pathlib.Path) -> Iterator[bytes]:
    """Reads a file in chunks of the ingest message size."""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def byte_chunks(data: bytes) -> Iterator[bytes]:
    """Splits bytes into chunks of the ingest message size."""
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start:start + CHUNK_BYTES]


def run_ingest(args: argparse.Namespace, conn: Connection) -> int:
    """Ingests every audio file named, printing one line per track; 1 when any failed."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(conn.channel)
    files = list(audio_files(args.paths))
    ingested, skipped, failures = 0, 0, []
    for path in tqdm(files, unit="file", disable=args.json or not sys.stderr.isatty()):
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            meta = read_tags(path)
            meta.track_id = track_id_for(path)
            meta.source_sha256 = digest
            if not args.force:
                existing = stub.BatchGetTracks(pb.BatchGetTracksRequest(
                    track_ids=[meta.track_id]), metadata=conn.metadata, timeout=conn.timeout_s)
                if existing.tracks and existing.tracks[0].metadata.source_sha256 == digest:
                    skipped += 1
                    continue
            requests = ingest_requests(meta, path.suffix.lower().lstrip("."), file_chunks(path))
            stub.IngestTrack(requests, metadata=conn.metadata,
                             timeout=conn.timeout_s)
            ingested += 1
        except grpc.RpcError as error:
            failures.append({"path": str(path), "code": error.code().name,
                             "error": error.details()})
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED):
                break  # every further file would fail the same way
        except OSError as error:
            failures.append({"path": str(path), "code": "IO", "error": str(error)})
    summary = {"files": len(files), "ingested": ingested, "skipped_unchanged": skipped,
               "failed": failures}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{ingested} ingested, {skipped} unchanged, {len(failures)} failed "
              f"({len(files)} files)")
        for failure in failures:
            print(f"  {failure['path']}: {failure['code']}: {failure['error']}")
    return 1 if failures else 0


def run_track(args: argparse.Namespace, conn: Connection) -> int:
    """Prints one track's metadata and features."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(conn.channel)
    try:
        reply = stub.GetTrack(pb.GetTrackRequest(track_id=args.track_id),
                              metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    track = MessageToDict(reply.track, preserving_proto_field_name=True)
    if args.json:
        print(json.dumps(track, indent=2))
        return 0
    for key, value in track.get("metadata", {}).items():
        print(f"{key:<16} {value}")
    features = track.get("features")
    if not features:
        print("features         (none: metadata-only track)")
        return 0
    for key, value in features.items():
        shown = (", ".join(f"{v:.2f}" for v in value) if isinstance(value, list)
                 else f"{value:.3f}" if isinstance(value, float) else value)
        print(f"{key:<22} {shown}")
    return 0
