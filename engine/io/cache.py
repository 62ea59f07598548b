"""Redis access: clients and the one-line errors users see when it is unreachable."""

from __future__ import annotations

import time

import redis
import redis.asyncio

from engine.errors import CacheUnavailableError, ConfigError
from engine.settings import redact_url

__all__ = ["async_client", "check_cache", "client", "validate_redis_url"]

_SCHEMES = ("redis://", "rediss://", "unix://")


def validate_redis_url(url: str) -> None:
    """Raise a ConfigError unless `url` is a Redis URL."""
    if not url.startswith(_SCHEMES):
        raise ConfigError(
            f"REDIS_URL must start with redis://, rediss:// or unix:// (got {redact_url(url)!r})"
        )


def client(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A synchronous client with bounded connect and socket timeouts."""
    validate_redis_url(url)
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from None


def async_client(url: str, *, timeout: float = 5.0) -> redis.asyncio.Redis:
    """An asyncio client with bounded connect and socket timeouts."""
    validate_redis_url(url)
    try:
        return redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from None


def check_cache(url: str, *, timeout: float = 5.0) -> float:
    """PING round trip in milliseconds; a CacheUnavailableError if Redis can't be reached."""
    conn = client(url, timeout=timeout)
    try:
        started = time.perf_counter()
        conn.ping()
        return (time.perf_counter() - started) * 1000
    except redis.RedisError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CacheUnavailableError(
            f"cannot connect to Redis at {redact_url(url)}: {detail}"
        ) from None
    finally:
        conn.close()
