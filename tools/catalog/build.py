"""Builds the demo catalog: music21 corpus pieces, rendered with FluidSynth, ingested
through the gateway with their real metadata. Skips pieces already in the catalog.

`python -m tools.catalog.build [--target ADDR] [--api-key KEY] [--limit N] [--workers N]`
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator

import grpc
from tqdm import tqdm

from cadenza.cli.catalog import byte_chunks, ingest_requests
from cadenza.cli.connection import GATEWAY_TARGET, default_key
from cadenza.retrieval.v1 import retrieval_pb2 as pb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from tools.catalog.listing import list_demo_sources
from tools.catalog.source import DemoPiece, iter_rendered_pieces


def piece_requests(piece: DemoPiece, audio: bytes) -> Iterator[pb.IngestTrackRequest]:
    """The IngestTrack stream for a rendered demo piece (FLAC)."""
    meta = pb.TrackMetadata(
        track_id=piece.track_id, title=piece.title, artist=piece.artist, album=piece.album,
        genre=piece.genre, tags=list(piece.tags), description=piece.description,
        attributes=piece.attributes)
    if piece.year is not None:
        meta.year = piece.year
    return ingest_requests(meta, "flac", byte_chunks(audio))


Metadata = tuple[tuple[str, str], ...]


def _present(stub: retrieval_pb2_grpc.RetrievalServiceStub, ids: list[str],
             metadata: Metadata) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(ids), 1000):
        reply = stub.BatchGetTracks(pb.BatchGetTracksRequest(track_ids=ids[start:start + 1000]),
                                    timeout=60, metadata=metadata)
        present |= {t.metadata.track_id for t in reply.tracks}
    return present


def main() -> int:
    """Builds the demo catalog; exit status 1 when any piece failed to ingest."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default=GATEWAY_TARGET)
    parser.add_argument("--api-key", default=default_key(),
                        help="API key (env CADENZA_API_KEY; default: the admin key `make up` "
                             "made, if present)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many pieces")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    started = time.perf_counter()
    sources = list_demo_sources()
    if args.limit:
        sources = sources[:args.limit]
    metadata: Metadata = (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
    with grpc.insecure_channel(args.target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        present = _present(stub, [s.track_id for s in sources], metadata)
        todo = [s for s in sources if s.track_id not in present]
        print(f"demo catalog: {len(sources)} pieces listed, {len(present)} already "
              f"ingested, {len(todo)} to build")
        ingested, failed, audio_s = 0, 0, 0.0
        progress = tqdm(total=len(todo), unit="track", disable=not sys.stderr.isatty())
        for piece, audio in iter_rendered_pieces(todo, workers=args.workers):
            try:
                stub.IngestTrack(piece_requests(piece, audio), timeout=120, metadata=metadata)
                ingested += 1
                audio_s += piece.duration_s
            except grpc.RpcError as error:
                failed += 1
                print(f"  {piece.track_id}: {error.code().name}: {error.details()}")
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    break
            progress.update(1)
        progress.close()
    wall_s = time.perf_counter() - started
    rate = ingested / wall_s * 60 if wall_s else 0.0
    print(f"ingested {ingested} tracks ({audio_s / 3600:.2f} h of audio), {failed} failed, "
          f"skipped {len(todo) - ingested - failed}; wall {wall_s:.0f} s "
          f"({rate:.0f} tracks/min)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
