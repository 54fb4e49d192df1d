"""API keys: their secrets, the hash the store keeps, and the rules for names and scopes.

A secret is "cdz_" + 43 url-safe characters (32 random bytes). It has full entropy, so one
SHA-256 is enough to store it safely (slow password hashes exist for guessable secrets);
the store indexes the hash, so a lookup costs one indexed read and no secret is kept.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable

from cadenza.kit.errors import InvalidArgument
from gateway.store import SCOPES

PREFIX = "cdz_"
_SECRET = re.compile(r"^cdz_[A-Za-z0-9_-]{43}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$")
# Which scope each public service needs.
SERVICE_SCOPES = {
    "cadenza.retrieval.v1.RetrievalService": "search",
    "cadenza.recommend.v1.RecommendService": "recommend",
    "cadenza.generate.v1.GenerateService": "generate",
    "cadenza.gateway.v1.AdminService": "admin",
}


def new_secret() -> str:
    """A fresh API key secret."""
    return PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A fresh public key id."""
    return "key_" + secrets.token_hex(8)


def well_formed(secret: str) -> bool:
    """Whether the string has the shape of a secret (checked before any store lookup)."""
    return _SECRET.match(secret) is not None


def hash_secret(secret: str) -> str:
    """The hex SHA-256 the store keeps for a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_tenant_name(name: str) -> str:
    """The name, or InvalidArgument saying what a tenant name must look like."""
    if not _TENANT.match(name):
        raise InvalidArgument(
            "tenant", f"{name!r}: use 2 to 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit")
    return name


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set, or InvalidArgument naming the unknown ones and the valid ones."""
    given = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidArgument("scopes", f"unknown scopes {unknown}: use any of {list(SCOPES)}")
    if not given:
        raise InvalidArgument("scopes", f"a key needs at least one scope: any of {list(SCOPES)}")
    return given


def scope_for(method: str) -> str:
    """The scope a full method name needs ("" for the gateway's own services: any key)."""
    service = method.lstrip("/").partition("/")[0]
    return SERVICE_SCOPES.get(service, "")
