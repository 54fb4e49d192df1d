"""Opening Qdrant the same way in every service: embedded on disk, or a server by URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from cadenza.kit.errors import Unavailable

EMBEDDED, SERVER = "qdrant-embedded", "qdrant-server"
T = TypeVar("T")


def open_qdrant(path: str, url: str = "", api_key: str = "") -> tuple[QdrantClient, str]:
    """A client and its kind: a server (gRPC preferred) when `url` is set, otherwise the
    embedded store at `path`, which only this process may open."""
    if url:
        return QdrantClient(url=url, api_key=api_key or None, prefer_grpc=True,
                            timeout=10), SERVER
    return QdrantClient(path=path), EMBEDDED


def call_qdrant(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs one client call; an unreachable or failing store becomes Unavailable here, at
    the adapter's edge, naming `what` failed."""
    try:
        return fn(*args, **kwargs)
    except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as error:
        raise Unavailable(f"{what} failed: {error}") from error
