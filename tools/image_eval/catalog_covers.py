"""Does the music drive the cover, over the real demo catalogue? And a contact sheet of it.

`python -m tools.image_eval.catalog_covers [--target ADDR] [--out DIR]` against a running
mesh (`make up`, or `make up` with a partial catalogue). Two parts:

1. Every catalogue track with audio: its features as retrieval measured them (ListTracks
   through the gateway), a cover composed at 640 px without motif and text (the same
   composer the service runs), each factor's visual property measured from the pixels
   (tools/image_eval/covers.py), and the rank correlation of each pair (goal >= 0.9).
2. Sixteen tracks spread over the catalogue's features (the extremes and quantiles of
   hue, density, brightness and contrast), each sent to GenerateCover through the gateway
   with the defaults (motif from the image model for the track's own metadata words,
   title and artist, a seed per cover), tiled into `<out>/catalog_covers.png` to look at.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib

import grpc
import numpy as np
from PIL import Image

from cadenza.cli.connection import GATEWAY_TARGET
from cadenza.generate.v1 import generate_pb2 as gpb
from cadenza.generate.v1 import generate_pb2_grpc
from cadenza.retrieval.v1 import retrieval_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2_grpc
from services.generate.catalog_client import track_features
from services.generate.image.cover import DEFAULT_WEIGHTS, compose
from services.generate.image.factors import factor_values
from tools.image_eval.covers import spearman_table

EVAL_WEIGHTS = {**DEFAULT_WEIGHTS, "motif": 0.0, "typography": 0.0}
SHEET_COLUMNS = 4
TILE_PX = 320


def catalogue(channel: grpc.Channel) -> list[rpb.Track]:
    """Every track with audio features, in the catalogue's order."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    tracks: list[rpb.Track] = []
    token = ""
    while True:
        page = stub.ListTracks(rpb.ListTracksRequest(page_size=500, page_token=token),
                               timeout=60)
        tracks += [t for t in page.tracks if t.HasField("features")]
        token = page.next_page_token
        if not token:
            return tracks


def spread(tracks: list[rpb.Track], count: int) -> list[rpb.Track]:
    """`count` tracks that differ: for each of four factors, its quantiles in turn."""
    values = [factor_values(track_features(t)) for t in tracks]
    chosen: list[int] = []
    names = ("hue_deg", "density", "brightness", "contrast")
    quantiles = np.linspace(0.0, 1.0, count // len(names))
    for name in names:
        order = np.argsort([v[name] for v in values], kind="stable")
        for q in quantiles:
            index = int(order[round(q * (len(order) - 1))])
            while index in chosen and len(chosen) < len(tracks):
                index = int(order[(list(order).index(index) + 1) % len(order)])
            chosen.append(index)
    return [tracks[i] for i in chosen[:count]]


def sheet(images: list[bytes], path: pathlib.Path) -> None:
    """The covers tiled SHEET_COLUMNS wide at TILE_PX each."""
    rows = (len(images) + SHEET_COLUMNS - 1) // SHEET_COLUMNS
    out = Image.new("RGB", (SHEET_COLUMNS * TILE_PX, rows * TILE_PX), (20, 20, 20))
    for i, data in enumerate(images):
        tile = Image.open(io.BytesIO(data)).convert("RGB").resize((TILE_PX, TILE_PX),
                                                                   Image.Resampling.LANCZOS)
        out.paste(tile, ((i % SHEET_COLUMNS) * TILE_PX, (i // SHEET_COLUMNS) * TILE_PX))
    out.save(path)


def main() -> None:
    """Prints the correlations over the catalogue and writes the contact sheet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=GATEWAY_TARGET, help="the gateway")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(".cache/image-eval"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with grpc.insecure_channel(args.target) as channel:
        tracks = catalogue(channel)
        if len(tracks) < 16:
            raise SystemExit(f"only {len(tracks)} tracks with audio at {args.target}; "
                             "build the demo catalogue first (make up)")
        features = [track_features(t) for t in tracks]
        covers = [compose(f, EVAL_WEIGHTS, args.seed, 640, None, "", "", "png")
                  for f in features]
        table = spearman_table(features, covers)
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        chosen = spread(tracks, 16)
        # A seed per cover, as callers who leave it unset get: the pattern's style varies.
        replies = [stub.GenerateCover(gpb.GenerateCoverRequest(
            track_id=t.metadata.track_id, seed=args.seed + i), timeout=120)
            for i, t in enumerate(chosen)]
    sheet([r.image for r in replies], args.out / "catalog_covers.png")
    print(json.dumps({
        "tracks": len(tracks),
        "spearman": {k: round(v, 3) for k, v in table.items()},
        "sheet": str(args.out / "catalog_covers.png"),
        "sheet_tracks": [{"track": t.metadata.title, "artist": t.metadata.artist,
                          "motif": r.motif_prompt,
                          "factors": {k: round(v, 2) for k, v in r.factors.items()}}
                         for t, r in zip(chosen, replies, strict=True)],
    }, indent=2))


if __name__ == "__main__":
    main()
