"""Who is calling: the tenant and key the access check found, for the rest of the call."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of the current call."""
    tenant: str
    key_id: str
    scopes: frozenset[str]

    @property
    def admin(self) -> bool:
        """Whether the key may manage tenants and see any tenant's usage and operations."""
        return "admin" in self.scopes


# Without keys (open local development) every call is the anonymous tenant's.
ANONYMOUS = Caller(tenant="anonymous", key_id="", scopes=frozenset(
    {"search", "recommend", "generate", "admin"}))
caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller", default=ANONYMOUS)
