"""The Last.fm HetRec-2k data (../shared/data/lastfm-2k): artists are the items.

Artists become metadata-only catalog tracks (their name, and the tags listeners gave
them as text content); each user-artist play count becomes one PLAY event with `count`.
"""

from __future__ import annotations

import collections
import pathlib
from dataclasses import dataclass

DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lastfm-2k"
TAGS_PER_ARTIST = 10
ARTIST_PREFIX = "lastfm-artist-"


@dataclass(frozen=True)
class Artist:
    """A Last.fm artist, which the evaluation treats as one track."""

    artist_id: str
    name: str
    tags: tuple[str, ...]

    @property
    def track_id(self) -> str:
        """The artist's id in the catalog."""
        return track_key(self.artist_id)


@dataclass(frozen=True)
class LastFm:
    """The Last.fm HetRec-2k data: artists and play counts."""

    artists: dict[str, Artist]  # by artist id
    plays: dict[str, dict[str, float]]  # user id -> artist id -> play count


def user_key(user_id: str) -> str:
    """A Last.fm user's id in the service."""
    return f"lastfm-user-{user_id}"


def track_key(artist_id: str) -> str:
    """A Last.fm artist's track id in the catalog."""
    return f"{ARTIST_PREFIX}{artist_id}"


def artist_of(track_id: str) -> str:
    """The Last.fm artist id of a catalog track id (track_key's inverse)."""
    return track_id.removeprefix(ARTIST_PREFIX)


def load(data: pathlib.Path = DATA) -> LastFm:
    """Reads the Last.fm files in the data folder."""
    def rows(name: str, encoding: str = "utf-8") -> list[list[str]]:
        lines = (data / name).read_text(encoding=encoding).splitlines()[1:]
        return [line.split("\t") for line in lines if line.strip()]

    tag_names = {tag_id: name for tag_id, name in rows("tags.dat", "latin-1")}
    tag_counts: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    for _user, artist, tag, *_ in rows("user_taggedartists.dat"):
        if tag in tag_names:
            tag_counts[artist][tag_names[tag]] += 1
    plays: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for user, artist, weight in rows("user_artists.dat"):
        plays[user][artist] = float(weight)
    names = {row[0]: row[1] for row in rows("artists.dat")}
    listened = {a for by_artist in plays.values() for a in by_artist}
    artists = {a: Artist(a, names.get(a, f"artist {a}"),
                         tuple(t for t, _ in tag_counts[a].most_common(TAGS_PER_ARTIST)))
               for a in sorted(listened, key=int)}
    return LastFm(artists, dict(plays))
