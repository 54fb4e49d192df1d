"""The demo catalog: pieces from the music21 corpus, arranged, as MIDI and rendered audio."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from music21 import corpus, stream

from services.generate.music.synth import render_midi
from tools.catalog.arrangement import Arrangement, arrange, midi_bytes
from tools.catalog.corpus_collections import COLLECTIONS_BY_KEY, GM_NAMES, Collection
from tools.catalog.listing import PieceSource, list_demo_sources

__all__ = [
    "DemoPiece",
    "PieceSource",
    "iter_demo_pieces",
    "iter_rendered_pieces",
    "list_demo_sources",
    "make_demo_piece",
]

logger = logging.getLogger(__name__)

MAX_DURATION_S = 60.0
# Shorter pieces (a few Essen fragments) give too little audio to describe.
MIN_DURATION_S = 5.0
# Part of every piece's random seed: change it to re-dress the whole catalog.
ARRANGEMENT_SEED = 20240601


class PieceSkipped(ValueError):
    """The source parsed but yields no usable piece (no notes, too short)."""


@dataclass(frozen=True)
class DemoPiece:
    """One catalog entry: metadata for search and display, and the performance as MIDI."""

    track_id: str  # stable across runs and machines: derived from the corpus path
    title: str
    artist: str
    album: str
    year: int | None  # only where the corpus metadata dates the piece
    genre: str
    tags: tuple[str, ...]
    description: str
    attributes: dict[str, str] = field(hash=False)  # key, meter, instrument, tempo_bpm, ...
    midi: bytes = field(repr=False)
    duration_s: float = 0.0


def make_demo_piece(source: PieceSource, *, max_duration_s: float = MAX_DURATION_S) -> DemoPiece:
    """Parses one corpus piece and arranges it; raises PieceSkipped if it has no usable music."""
    collection = COLLECTIONS_BY_KEY[source.collection]
    score = _parse(source)
    rng = np.random.default_rng([ARRANGEMENT_SEED, _seed(source.source_key)])
    ensemble = collection.ensembles[int(rng.integers(len(collection.ensembles)))]
    low_bpm, high_bpm = collection.tempo_bpm
    arrangement = Arrangement(
        programs=ensemble,
        tempo_bpm=int(rng.integers(low_bpm, high_bpm + 1)),
        velocity=int(rng.integers(70, 111)),
        max_duration_s=max_duration_s,
    )
    arranged = arrange(score, arrangement)
    if arranged.duration_s < MIN_DURATION_S:
        raise PieceSkipped(f"{source.source_key}: {arranged.duration_s:.1f} s of notes")
    key = arranged.score.analyze("key")
    key_name = f"{key.tonic.name.replace('-', 'b')} {key.mode}"
    instruments = sorted({GM_NAMES.get(p, f"GM {p}") for p in arranged.part_programs})
    title = _title(source, score)
    artist = _artist(source, collection)
    genre = source.genre or collection.genre
    attributes = {
        "key": key_name,
        "meter": arranged.meter or "unknown",
        "instrument": ", ".join(instruments),
        "tempo_bpm": str(arrangement.tempo_bpm),
        "parts": str(len(arranged.part_programs)),
        "source": f"music21 corpus: {source.source_key}",
    }
    author = {"Traditional": "traditional", "Anonymous": "anonymous"}.get(artist, f"by {artist}")
    metre = f", {arranged.meter} time" if arranged.meter else ""
    description = (
        f"{title} ({genre}), {author}, from {collection.album}, in {key_name}{metre},"
        f" played on {_joined(instruments)} at {arrangement.tempo_bpm} BPM."
    )
    return DemoPiece(
        track_id=source.track_id,
        title=title,
        artist=artist,
        album=collection.album,
        year=_year(source.date),
        genre=genre,
        tags=tuple(dict.fromkeys((*collection.tags, *source.tags, key.mode))),
        description=description,
        attributes=attributes,
        midi=midi_bytes(arranged.score),
        duration_s=round(arranged.duration_s, 3),
    )


def iter_demo_pieces(
    sources: Iterable[PieceSource] | None = None, *, workers: int = 1
) -> Iterator[DemoPiece]:
    """Yields a DemoPiece per source (default: list_demo_sources()), in order.

    Sources that fail to parse or are skipped are logged and left out. With workers > 1
    the parsing runs in a pool of spawned processes (music21 is pure Python and holds the
    GIL), so a calling script needs the usual `if __name__ == "__main__":` guard.
    """
    for piece, _ in _iter_pieces(sources, workers=workers, audio_format=None):
        yield piece


def iter_rendered_pieces(
    sources: Iterable[PieceSource] | None = None,
    *,
    workers: int = 1,
    audio_format: str = "FLAC",
) -> Iterator[tuple[DemoPiece, bytes]]:
    """Yields (piece, audio file bytes at 22050 Hz) per source; one synth per worker."""
    for piece, audio in _iter_pieces(sources, workers=workers, audio_format=audio_format):
        if audio is not None:
            yield piece, audio


def _iter_pieces(
    sources: Iterable[PieceSource] | None, *, workers: int, audio_format: str | None
) -> Iterator[tuple[DemoPiece, bytes | None]]:
    source_list = list(list_demo_sources() if sources is None else sources)
    jobs = [(source, audio_format) for source in source_list]
    if workers <= 1:
        results: Iterable[tuple[DemoPiece, bytes | None] | None] = map(_build, jobs)
        yield from (result for result in results if result is not None)
        return
    # "spawn", not fork: libfluidsynth loads soundfonts with OpenMP, and a child forked
    # from a process whose OpenMP pool is running deadlocks in its first parallel region.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for result in pool.map(_build, jobs, chunksize=4):
            if result is not None:
                yield result


def _build(job: tuple[PieceSource, str | None]) -> tuple[DemoPiece, bytes | None] | None:
    source, audio_format = job
    try:
        piece = make_demo_piece(source)
    except PieceSkipped as e:
        logger.info("skipped %s", e)
        return None
    except Exception:
        # The corpus has a few files music21 cannot read; one must not stop the catalog.
        logger.warning("could not make a piece from %s", source.source_key, exc_info=True)
        return None
    if audio_format is None:
        return piece, None
    return piece, render_midi(piece.midi, audio_format=audio_format)


def _parse(source: PieceSource) -> stream.Score:
    # forceSource: parse from the file every time instead of reading and writing music21's
    # pickle cache under TMPDIR (concurrent workers, stale caches, disk use).
    parsed = corpus.parse(source.corpus_path, number=source.number, forceSource=True)
    if isinstance(parsed, stream.Opus):
        # Josquin's ABC files store each voice as its own tune; merge them into parts.
        merged = parsed.mergeScores()  # type: ignore[no-untyped-call]
        parsed = merged if isinstance(merged, stream.Score) else parsed.scores.first()
    if not isinstance(parsed, stream.Score):
        raise PieceSkipped(f"{source.source_key}: not a score")
    if not parsed.parts:
        wrapper = stream.Score()
        wrapper.insert(0, stream.Part(parsed.flatten().notesAndRests))  # type: ignore[no-untyped-call]
        parsed = wrapper
    return parsed


def _title(source: PieceSource, score: stream.Score) -> str:
    if source.title:
        return source.title
    if score.metadata is not None and score.metadata.title:
        return str(score.metadata.title).strip().rstrip(".")
    return source.display_title


def _artist(source: PieceSource, collection: Collection) -> str:
    return source.composer or collection.artist


def _year(date: str | None) -> int | None:
    match = re.search(r"\b(1[0-9]{3})\b", date or "")
    return int(match.group(1)) if match else None


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _joined(names: list[str]) -> str:
    lowered = [name.lower() for name in names]
    return lowered[0] if len(lowered) == 1 else ", ".join(lowered[:-1]) + " and " + lowered[-1]
