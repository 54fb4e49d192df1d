"""Chooses the demo catalog's pieces from music21's corpus metadata, without parsing them."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from music21 import corpus
from music21.corpus import chorales
from music21.metadata import Metadata
from music21.metadata.bundles import MetadataEntry

from tools.catalog.corpus_collections import COLLECTIONS, FOLDER_COMPOSERS, Collection

logger = logging.getLogger(__name__)

_ORIGINS = ("scotch", "irish", "english", "german", "french", "american")
_DANCES = (
    "reel",
    "jig",
    "hornpipe",
    "strathspey",
    "clog",
    "waltz",
    "polka",
    "march",
    "schottische",
)


@dataclass(frozen=True)
class PieceSource:
    """Where a piece comes from in the corpus, with what the metadata says about it."""

    collection: str  # Collection.key
    corpus_path: str  # as corpus.parse takes it, e.g. "essenFolksong/ballad10.abc"
    number: int | None  # tune number inside a multi-tune ABC file
    title: str | None = None
    composer: str | None = None
    date: str | None = None
    genre: str | None = None  # overrides the collection's genre
    tags: tuple[str, ...] = ()

    @property
    def source_key(self) -> str:
        """The corpus location, with "#<number>" for one tune of a multi-tune file."""
        return self.corpus_path if self.number is None else f"{self.corpus_path}#{self.number}"

    @property
    def track_id(self) -> str:
        """Collection key plus a hash of the corpus location: stable, unique, URL-safe."""
        digest = hashlib.blake2b(self.source_key.encode(), digest_size=5).hexdigest()
        return f"{self.collection}-{digest}"

    @property
    def display_title(self) -> str:
        """The metadata's title, else one made from the file path."""
        return self.title or _title_from_path(self.corpus_path)


def list_demo_sources(collections: Iterable[Collection] = COLLECTIONS) -> list[PieceSource]:
    """The catalog's pieces: an evenly spaced subset of each collection, in a fixed order.

    Reads music21's metadata bundle (~3 s) instead of parsing ~15,000 corpus entries; the
    large Essen and O'Neill ABC files are only ever parsed one tune at a time.
    """
    bundle = corpus.corpora.CoreCorpus().metadataBundle
    bundle.read()  # type: ignore[no-untyped-call]
    # MetadataBundle has no __iter__: iterating goes through __getitem__, which copies all
    # 15,000 entries per step (13 s). Its dict of entries is read directly instead.
    entries = list(bundle._metadataEntries.values())
    sources: list[PieceSource] = []
    for collection in collections:
        if collection.key == "bach-chorales":
            candidates = _chorale_sources(collection)
        else:
            candidates = _bundle_sources(collection, entries)
        chosen = _evenly_spaced(candidates, collection.max_pieces)
        logger.info("%s: %d of %d pieces", collection.key, len(chosen), len(candidates))
        sources.extend(chosen)
    track_ids = [source.track_id for source in sources]
    if len(set(track_ids)) != len(track_ids):
        raise RuntimeError("two demo pieces share a track id; lengthen the digest")
    return sources


def _chorale_sources(collection: Collection) -> list[PieceSource]:
    titles = chorales.ChoraleListRKBWV().byBWV  # type: ignore[no-untyped-call]
    sources = []
    # 371 Riemenschneider numbers, of which 20 repeat a BWV number already listed.
    for name in dict.fromkeys(chorales.Iterator(returnType="filename")):
        bwv = name.removeprefix("bach/bwv")
        title = titles.get(bwv, {}).get("title")
        sources.append(
            PieceSource(
                collection.key,
                name,
                None,
                title=f"{title}, BWV {bwv}" if title else f"Chorale BWV {bwv}",
            )
        )
    return sources


def _bundle_sources(collection: Collection, entries: list[MetadataEntry]) -> list[PieceSource]:
    matching = []
    for entry in entries:
        source_path = PurePosixPath(str(entry.sourcePath))
        if (source_path.parts[0] in collection.folders
                and source_path.suffix in collection.suffixes):
            # Numbers are strings ("12"); a whole multi-tune file has its own None entry.
            number = int(entry.number) if entry.number else None
            matching.append((str(source_path), number, entry.metadata))
    matching.sort(key=lambda item: (item[0], item[1] or 0))
    numbered_files = {path for path, number, _ in matching if number is not None}
    sources: list[PieceSource] = []
    seen: set[str] = set()
    for path, number, metadata in matching:
        if collection.key == "josquin":
            # Josquin's ABC files hold one voice per tune: the piece is the whole file.
            number = None
        elif number is None and path in numbered_files:
            continue
        # Beethoven's op. 18 no. 1 is there as .mxl and as .krn: keep one of each piece.
        identity = str(PurePosixPath(path).with_suffix("")) + f"#{number}"
        if identity in seen:
            continue
        seen.add(identity)
        sources.append(_source_from_metadata(collection, path, number, metadata))
    return sources


def _source_from_metadata(
    collection: Collection, corpus_path: str, number: int | None, metadata: Metadata | None
) -> PieceSource:
    if metadata is None:  # a few corpus files carry no metadata at all
        metadata = Metadata()
    title, tags = _title_and_dance(metadata)
    composer, genre = _composer_and_genre(collection, corpus_path, metadata)
    locale = _clean(metadata.localeOfComposition)
    if collection.key == "essen" and locale:
        genre, origin_tags = _essen_origin(locale)
        tags.extend(origin_tags)
    if collection.key == "palestrina":
        # Section names ("Et iterum") repeat across masses; the file names the movement.
        title = _title_from_path(corpus_path) + (f": {title}" if title else "")
    date = metadata.dateCreated
    return PieceSource(
        collection.key,
        corpus_path,
        number,
        title=title,
        composer=composer,
        date=str(date) if date else None,
        genre=genre,
        tags=tuple(tags),
    )


def _title_and_dance(metadata: Metadata) -> tuple[str | None, list[str]]:
    """A cleaned title, and dance-type tags taken off its end ("JOHNSON'S -- HORNPIPE")."""
    title = _readable(_clean(metadata.title)) or _readable(_clean(metadata.movementName))
    if not title or re.search(r"\.(mxl|xml|krn|abc)$", title):
        return None, []  # no title, or a file name standing in for one
    name, _, kind = title.partition(" -- ")
    tags = [dance for dance in _DANCES if dance in kind.lower()]
    name = re.sub(r"^\d+( \(\d+\))?\.\s*", "", name)  # "14 (105). Quanto ...", "7. Gloria"
    return _tidy(name), tags


def _composer_and_genre(
    collection: Collection, corpus_path: str, metadata: Metadata
) -> tuple[str | None, str | None]:
    folder = corpus_path.split("/", 1)[0]
    if folder in FOLDER_COMPOSERS:
        # The metadata spells these composers three ways ("Beethoven", "Beethoven, Ludwig
        # van", none), so the folder decides; lead sheets name their own songwriters.
        composer, genre = FOLDER_COMPOSERS[folder]
        if composer == "Various":
            composer = _tidy(_clean(metadata.composer) or composer)
        return composer, genre
    credited = _clean(metadata.composer) if collection.artist_from_metadata else None
    if credited:
        # Trecento composers carry manuscript sigla ("Gherardello F-Pn 568").
        credited = re.sub(r"\s+[A-Z]{1,3}-[A-Z][A-Za-z]*\b.*$", "", credited)
    if not credited or len(credited) < 3 or credited.strip(".").lower() in _ORIGINS:
        return None, None  # Ryan's sometimes puts the origin ("SCOTCH.") there
    return _tidy(credited), None


def _essen_origin(locale: str) -> tuple[str, list[str]]:
    """Genre and tags from an Essen locale such as "Mitteleuropa, Deutschland (BRD)"."""
    if any(place in locale for place in ("China", "Asien", "Hunan", "Yunnan")):
        return "Chinese folk song", ["chinese", "china"]
    parts = [part.strip() for part in locale.split(",") if part.strip()]
    region = re.sub(r"\s*\(.*?\)", "", parts[1] if len(parts) > 1 else parts[0])
    return "European folk song", ["european", region.split("/")[0].strip().lower()]


def _evenly_spaced(items: list[PieceSource], count: int) -> list[PieceSource]:
    if len(items) <= count:
        return items
    indices = np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))
    return [items[int(index)] for index in indices]


def _title_from_path(corpus_path: str) -> str:
    """A readable title from a path: "haydn/opus1no1/movement2.mxl" -> "Op. 1 No. 1, Movement 2"."""
    parts = PurePosixPath(corpus_path).with_suffix("").parts[1:]
    words = []
    for part in parts:
        part = re.sub(r"^opus(\d+)", r"Op. \1 ", part)
        part = re.sub(r"no(\d+)", r"No. \1", part)
        part = re.sub(r"^k(\d+)$", r"K. \1", part)
        part = re.sub(r"^movement(\d+)", r"Movement \1", part)
        part = re.sub(r"^madrigal\.(\d+)\.(\d+)$", r"Madrigal, Book \1 No. \2", part)
        part = part.replace("_", " ").replace("Agnus ", "Agnus Dei ")
        words.append(part[:1].upper() + part[1:].strip())
    return ", ".join(words)


def _clean(value: object) -> str | None:
    text = str(value).strip().strip('"').strip() if value else ""
    return text or None


def _tidy(text: str) -> str:
    """Collapses spaces, drops a final full stop, and un-shouts ALL-CAPS titles."""
    text = re.sub(r"\s+", " ", text).strip().rstrip(".").strip()
    if text.isupper():
        # str.title() would give "Postman'S"; capitalise whole words only.
        text = " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))
    return text


def _readable(text: str | None) -> str | None:
    """None for OCR debris such as '.lV.L"'!UCl'l.v' (monteverdi metadata)."""
    if not text:
        return None
    letters = sum(character.isalpha() or character == " " for character in text)
    return text if letters >= 0.8 * len(text) else None
