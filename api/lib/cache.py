"""Cached API reads: Redis entries with per-route TTLs, invalidated by data versions.

Same TTL rules as providers (DESIGN.md): TTL 0 always recomputes and then stores; TTL > 0
serves the stored body while it is younger than the TTL. Each entry also records the
versions of the data it was computed from (`bars:SPX`, `regimes`, ...); writers bump those
counters (engine.io.cache.bump_versions), so one MGET tells a fresh entry from a stale
one and invalidation never has to find keys. Redis being down makes every read a
recompute, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import msgspec
import redis.asyncio

from api.lib.observability import CACHE_REQUESTS
from engine.errors import ConfigError
from engine.io.cache import CacheOutcome, version_key

__all__ = ["DEFAULT_TTLS", "ResponseCache"]

log = logging.getLogger(__name__)

# Seconds per cached route; REGIMELAB_API_TTLS overrides them.
DEFAULT_TTLS: Final[dict[str, int]] = {
    "instruments": 60,
    "bars": 300,
    "features": 300,
    "regimes.snapshot": 60,
    "regimes.labels": 300,
    "regimes.stats": 300,
    "regimes.forecast": 300,
    "backtests.results": 3600,
    "backtests.equity": 3600,
    "signals": 60,
    "analogs": 300,
}
_WARN_EVERY: Final = 30.0  # seconds between "cache unavailable" warnings
_ZERO_TTL_EXPIRY: Final = 86_400  # TTL-0 entries are stored too; they expire after a day
_SEP: Final = b"\n"


class ResponseCache:
    """Per-route TTL cache of response bodies, shared by every replica through Redis."""

    def __init__(
        self, client: redis.asyncio.Redis, prefix: str, overrides: Mapping[str, int]
    ) -> None:
        self.check_overrides(overrides)
        self._client = client
        self._prefix = prefix
        self.ttls = {**DEFAULT_TTLS, **overrides}
        self._warned_at = -_WARN_EVERY

    def _warn_unavailable(self, exc: redis.RedisError) -> None:
        # once per outage window, not once per request: an outage must not flood the log
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("response cache unavailable (%s); computing reads until it returns", exc)

    @staticmethod
    def check_overrides(overrides: Mapping[str, int]) -> None:
        """ConfigError if REGIMELAB_API_TTLS names a route that is not cached."""
        unknown = sorted(set(overrides) - set(DEFAULT_TTLS))
        if unknown:
            raise ConfigError(
                f"REGIMELAB_API_TTLS names unknown route(s) {unknown}; "
                f"cached routes: {', '.join(sorted(DEFAULT_TTLS))}"
            )

    def _key(self, route: str, params: Mapping[str, object]) -> str:
        canonical = msgspec.json.encode(dict(sorted(params.items())))
        return f"{self._prefix}:api:{route}:{hashlib.sha256(canonical).hexdigest()[:32]}"

    async def body(
        self,
        route: str,
        params: Mapping[str, object],
        depends: Sequence[str],
        compute: Callable[[], Awaitable[bytes]],
    ) -> tuple[bytes, CacheOutcome]:
        """The response body for `route` with `params`, computed at most once per TTL."""
        ttl = self.ttls[route]
        key = self._key(route, params)
        version_keys = [version_key(self._prefix, scope) for scope in depends]
        try:
            values = await self._client.mget([key, *version_keys])
        except redis.RedisError as exc:
            self._warn_unavailable(exc)
            return await compute(), self._count(route, CacheOutcome.BYPASS)
        versions = b",".join(v if isinstance(v, bytes) else b"0" for v in values[1:])
        stored = values[0]
        if ttl > 0 and isinstance(stored, bytes):
            stored_versions, _, body = stored.partition(_SEP)
            if stored_versions == versions:
                return body, self._count(route, CacheOutcome.HIT)
        body = await compute()
        try:
            await self._client.set(
                key, versions + _SEP + body, ex=ttl if ttl > 0 else _ZERO_TTL_EXPIRY
            )
        except redis.RedisError as exc:
            log.warning("could not store %s in the response cache: %s", route, exc)
            return body, self._count(route, CacheOutcome.BYPASS)
        return body, self._count(route, CacheOutcome.MISS if ttl > 0 else CacheOutcome.REFRESH)

    async def value[T](
        self,
        route: str,
        params: Mapping[str, object],
        depends: Sequence[str],
        compute: Callable[[], Awaitable[T]],
        type_: type[T],
    ) -> T:
        """A typed response (msgspec struct) through :meth:`body`."""
        computed: list[T] = []

        async def encoded() -> bytes:
            value = await compute()
            computed.append(value)
            return msgspec.json.encode(value)

        body, _ = await self.body(route, params, depends, encoded)
        return computed[0] if computed else msgspec.json.decode(body, type=type_)

    async def invalidate(self, *scopes: str) -> None:
        """Mark data scopes changed (async twin of engine.io.cache.bump_versions)."""
        keys = sorted({version_key(self._prefix, scope) for scope in scopes})
        if not keys:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                await pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not invalidate cached reads of %s: %s", ", ".join(keys), exc)

    @staticmethod
    def _count(route: str, outcome: CacheOutcome) -> CacheOutcome:
        CACHE_REQUESTS.labels(route=route, outcome=outcome.value).inc()
        return outcome
