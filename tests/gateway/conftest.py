"""Servers the gateway's tests share: PostgreSQL (the store) and Redis (quota counters)."""

from tests.support.postgres import postgres  # noqa: F401
from tests.support.redis import redis_server, redis_url  # noqa: F401
