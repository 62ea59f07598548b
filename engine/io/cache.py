"""Redis: clients, health checks and the read-through TTL cache every provider call uses.

TTL semantics (DESIGN.md): TTL = 0 always calls the source, then stores the fresh value;
TTL > 0 serves the stored value while it is younger than TTL seconds and calls the source
only when it is missing or expired. A per-key lock in Redis lets one caller fetch while the
others wait for its value (no stampede on a cold key), and a Redis outage never becomes an
outage of ours: the source is called directly, the failure is logged and counted, and Redis
is tried again after a short pause.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable

import redis
import redis.asyncio

from engine.errors import CacheUnavailableError, ConfigError
from engine.settings import redact_url

__all__ = [
    "CacheOutcome",
    "ReadThroughCache",
    "async_client",
    "bump_versions",
    "cache_key",
    "check_cache",
    "client",
    "validate_redis_url",
    "version_key",
]

log = logging.getLogger(__name__)

_SCHEMES = ("redis://", "rediss://", "unix://")

# Deletes the lock only if this caller still holds it (its token), atomically.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


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


def cache_key(prefix: str, *parts: str, payload: bytes = b"") -> str:
    """`prefix:part:...:<sha256 of payload, 32 hex>`: the key says what was asked."""
    digest = hashlib.sha256(payload).hexdigest()[:32]
    return ":".join((prefix, *parts, digest))


def version_key(prefix: str, scope: str) -> str:
    """The Redis counter of a data scope (`bars:SPX`, `regimes`, ...) that cached reads embed.

    Writers bump it when the data changes; a cached API response stored under an older
    version is then a miss, so invalidation never has to find and delete keys.
    """
    return f"{prefix}:ver:{scope}"


def bump_versions(redis_client: redis.Redis | None, prefix: str, scopes: Iterable[str]) -> None:
    """Mark `scopes` as changed; a Redis outage is logged, never raised (entries then expire)."""
    keys = sorted({version_key(prefix, scope) for scope in scopes})
    if redis_client is None or not keys:
        return
    try:
        with redis_client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not invalidate cached reads of %s: %s", ", ".join(keys), exc)


class CacheOutcome(enum.StrEnum):
    """How a value was served."""

    HIT = "hit"  # fresh value from Redis; the source was not called
    MISS = "miss"  # missing or expired: source called, value stored
    REFRESH = "refresh"  # TTL 0: source always called, value stored
    BYPASS = "bypass"  # Redis unavailable: source called, nothing stored


class ReadThroughCache:
    """Read-through TTL cache over Redis, safe to share between threads."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        lock_seconds: float = 60.0,
        wait_seconds: float = 60.0,
        poll_seconds: float = 0.02,
        retry_redis_after: float = 5.0,
    ) -> None:
        self._redis = redis_client
        self._lock_ms = int(lock_seconds * 1000)
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._retry_after = retry_redis_after
        self._down_until = 0.0
        self._local_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.stats: Counter[str] = Counter()

    # -- Redis, failing soft ------------------------------------------------------------------
    def _available(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: redis.RedisError) -> None:
        self.stats["errors"] += 1
        if time.monotonic() >= self._down_until:
            log.warning("Redis unavailable (%s); calling sources directly for a while", exc)
        self._down_until = time.monotonic() + self._retry_after

    def _get(self, key: str) -> bytes | None:
        assert self._redis is not None
        value = self._redis.get(key)
        return value if isinstance(value, bytes) else None

    def _store(self, key: str, value: bytes, ttl: int) -> None:
        if not self._available():
            return
        assert self._redis is not None
        try:
            # TTL 0 still stores (DESIGN: "always call the source, then store"); it expires
            # after a day so refresh-only keys don't pile up forever.
            self._redis.set(key, value, ex=ttl if ttl > 0 else 86_400)
        except redis.RedisError as exc:
            self._failed(exc)

    def _local_lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._local_locks.setdefault(key, threading.Lock())

    def bump_versions(self, prefix: str, scopes: Iterable[str]) -> None:
        """Invalidate cached reads of `scopes` (see :func:`bump_versions`)."""
        if self._available():
            bump_versions(self._redis, prefix, scopes)

    # -- the read-through ---------------------------------------------------------------------
    def get_or_fetch(
        self, key: str, ttl: int, fetch: Callable[[], bytes]
    ) -> tuple[bytes, CacheOutcome]:
        """The value for `key` under the TTL rules, and how it was served."""
        if ttl < 0:
            raise ValueError(f"TTL must be >= 0 seconds, got {ttl}")
        if ttl == 0:
            value = fetch()
            self._store(key, value, ttl)
            return value, self._count(
                CacheOutcome.REFRESH if self._available() else CacheOutcome.BYPASS
            )
        if not self._available():
            return fetch(), self._count(CacheOutcome.BYPASS)
        # Threads of this process queue on a local lock, so one burst costs one Redis lock.
        with self._local_lock(key):
            try:
                return self._read_through(key, ttl, fetch)
            except redis.RedisError as exc:
                self._failed(exc)
                return fetch(), self._count(CacheOutcome.BYPASS)

    def _read_through(
        self, key: str, ttl: int, fetch: Callable[[], bytes]
    ) -> tuple[bytes, CacheOutcome]:
        assert self._redis is not None
        lock_key = f"{key}:lock"
        deadline = time.monotonic() + self._wait
        while True:
            cached = self._get(key)
            if cached is not None:
                return cached, self._count(CacheOutcome.HIT)
            token = uuid.uuid4().hex
            if self._redis.set(lock_key, token, nx=True, px=self._lock_ms):
                try:
                    cached = self._get(key)  # filled while we were acquiring the lock?
                    if cached is not None:
                        return cached, self._count(CacheOutcome.HIT)
                    value = fetch()
                    self._redis.set(key, value, ex=ttl)
                    return value, self._count(CacheOutcome.MISS)
                finally:
                    self._redis.eval(_RELEASE, 1, lock_key, token)
            if time.monotonic() > deadline:  # the holder is stuck: don't wait forever
                log.warning("waited %.0fs for %s; fetching without the lock", self._wait, key)
                value = fetch()
                self._store(key, value, ttl)
                return value, self._count(CacheOutcome.MISS)
            time.sleep(self._poll)

    def _count(self, outcome: CacheOutcome) -> CacheOutcome:
        self.stats[outcome.value] += 1
        return outcome
