"""The text embedded for a catalog track; the encoder itself is cadenza.kit.text_encoder."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cadenza.kit.text_encoder import ModelCard, TextEncoder, default_providers

if TYPE_CHECKING:
    from services.retrieval.model import TrackMetadata

__all__ = ["ModelCard", "TextEncoder", "default_providers", "track_text"]

_SPACE = re.compile(r"\s+")


def track_text(metadata: TrackMetadata | Mapping[str, Any]) -> str:
    """The text embedded for a track, from a TrackMetadata or a dict with the same keys.

    Sentences in a fixed order, each left out when its fields are empty, each ending in a
    full stop unless it already ends in '.', '!' or '?':

        "{title} by {artist}, from {album} ({year}). Genre: {genre}. Tags: {t1}, {t2}.
         {key}: {value}; {key}: {value}. {description}"

    e.g. "Clair de lune by Debussy, from Suite bergamasque (1905). Genre: classical.
    Tags: piano, calm. mood: dreamy; tempo: slow. A quiet, flowing nocturne."
    Attributes are sorted by key. The free-text description goes last because it can be
    long and the encoder truncates at 256 tokens: the short identifying fields come first
    so they always count. Whitespace runs become one space.
    """
    title = _text(_field(metadata, "title"))
    artist = _text(_field(metadata, "artist"))
    album = _text(_field(metadata, "album"))
    year = _field(metadata, "year")
    head = title
    if artist:
        head = f"{head} by {artist}" if head else f"By {artist}"
    if album:
        head = f"{head}, from {album}" if head else f"From {album}"
    if year:
        head = f"{head} ({year})"
    sentences = [head]
    if genre := _text(_field(metadata, "genre")):
        sentences.append(f"Genre: {genre}")
    if tags := [t for t in (_text(t) for t in _strings(_field(metadata, "tags"))) if t]:
        sentences.append("Tags: " + ", ".join(tags))
    attributes = _field(metadata, "attributes") or {}
    if pairs := [f"{_text(k)}: {_text(v)}" for k, v in sorted(attributes.items())
                 if _text(k) and _text(v)]:
        sentences.append("; ".join(pairs))
    sentences.append(_text(_field(metadata, "description")))
    return " ".join(_full_stop(s) for s in sentences if s)


def _field(metadata: object, name: str) -> Any:
    if isinstance(metadata, Mapping):
        return metadata.get(name)
    return getattr(metadata, name, None)


def _strings(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _text(value: object) -> str:
    return _SPACE.sub(" ", str(value)).strip() if value is not None else ""


def _full_stop(sentence: str) -> str:
    return sentence if sentence[-1] in ".!?" else f"{sentence}."
