"""API keys on every `/api/` route: who is calling (middleware), what they may do (guards).

The middleware reads `Authorization: Bearer <key>` or `X-API-Key: <key>`, verifies the
key's digest against the database (trusting a verified key for a few seconds per
replica, so a busy route does not write `last_used_at` on every request), applies the
per-key rate limit, and stores the key in the ASGI scope. Guards then check its scope;
health, readiness, metrics and the docs are outside `/api/` and stay open.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final, cast

import redis.asyncio
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Guard, HTTPScope, Receive, Scope, Send
from psycopg_pool import AsyncConnectionPool

from api.lib.problems import send_problem
from engine.io.api_keys import ApiKey, averify_api_key, digest, well_formed
from engine.io.api_keys import Scope as KeyScope

__all__ = [
    "SECURITY",
    "SECURITY_SCHEMES",
    "ApiKeyMiddleware",
    "KeyVerifier",
    "RateLimiter",
    "api_key_of",
    "requires",
]

AUTH_SCOPE_KEY: Final = "regimelab_api_key"
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="regimelab"'}

SECURITY_SCHEMES: Final[dict[str, dict[str, str]]] = {
    "BearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key (rl_...)"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
SECURITY: Final[list[dict[str, list[str]]]] = [{"BearerAuth": []}, {"ApiKeyHeader": []}]


class KeyVerifier:
    """Verified keys by digest, trusted for `ttl` seconds per replica (0 = always ask)."""

    def __init__(self, pool: AsyncConnectionPool, secret: bytes, ttl: float) -> None:
        self._pool = pool
        self._secret = secret
        self._ttl = ttl
        self._known: dict[str, tuple[float, ApiKey | None]] = {}

    async def verify(self, key: str) -> ApiKey | None:
        """The live key `key` is, or None."""
        if not well_formed(key):
            return None
        hashed = digest(key, self._secret)
        now = time.monotonic()
        known = self._known.get(hashed)
        if known is not None and known[0] > now:
            return known[1]
        async with self._pool.connection() as conn:
            api_key = await averify_api_key(conn, key, self._secret)
        if len(self._known) > 10_000:  # a flood of bad keys must not grow memory
            self._known.clear()
        if self._ttl > 0:
            self._known[hashed] = (now + self._ttl, api_key)
        return api_key


class RateLimiter:
    """Fixed one-minute windows per key in Redis; a Redis outage lets requests through."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, per_minute: int) -> None:
        self._client = client
        self._prefix = prefix
        self.per_minute = per_minute

    async def hit(self, key_id: int) -> tuple[int, int]:
        """(requests left in this window, seconds until it resets); left < 0 means over."""
        if self.per_minute <= 0:
            return 1, 0
        now = time.time()
        window = int(now // 60)
        reset = max(1, math.ceil((window + 1) * 60 - now))
        name = f"{self._prefix}:ratelimit:{key_id}:{window}"
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, 61)
                count, _ = await pipe.execute()
        except redis.RedisError:
            return 1, reset
        return self.per_minute - int(count), reset


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return None


def _presented_key(scope: Scope) -> str | None:
    authorization = _header(scope, b"authorization")
    if authorization:
        kind, _, credentials = authorization.partition(" ")
        if kind.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return _header(scope, b"x-api-key") or None


class ApiKeyMiddleware(ASGIMiddleware):
    """401 without a live key, 429 over the key's rate limit, else the key rides the scope."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if not scope["path"].startswith("/api/"):
            await next_app(scope, receive, send)
            return
        if cast("HTTPScope", scope)["method"] == "OPTIONS":  # CORS preflight carries no credentials
            await next_app(scope, receive, send)
            return
        state = scope["litestar_app"].state
        presented = _presented_key(scope)
        if presented is None:
            await send_problem(
                send,
                401,
                "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                _WWW_AUTHENTICATE,
            )
            return
        api_key = await state.key_verifier.verify(presented)
        if api_key is None:
            await send_problem(send, 401, "the API key is unknown or revoked", _WWW_AUTHENTICATE)
            return
        limiter: RateLimiter = state.rate_limiter
        left, reset = await limiter.hit(api_key.id)
        if left < 0:
            await send_problem(
                send,
                429,
                f"over {limiter.per_minute} requests per minute for this API key; "
                f"retry in {reset} s",
                {
                    "Retry-After": str(reset),
                    "RateLimit-Limit": str(limiter.per_minute),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(reset),
                },
            )
            return
        cast("dict[str, Any]", scope)[AUTH_SCOPE_KEY] = api_key
        await next_app(scope, receive, send)


def api_key_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey | None:
    """The verified key of this request (None outside `/api/`)."""
    key: ApiKey | None = connection.scope.get(AUTH_SCOPE_KEY)  # type: ignore[assignment]
    return key


def requires(needed: KeyScope) -> Guard:
    """A guard that answers 403 unless the request's key carries `needed` (or a wider scope)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        api_key = api_key_of(connection)
        if api_key is None:
            raise NotAuthorizedException(detail="an API key is required", headers=_WWW_AUTHENTICATE)
        if not api_key.allows(needed):
            raise PermissionDeniedException(
                detail=f"this route needs an API key with the '{needed}' scope "
                f"(this key has: {', '.join(api_key.scopes) or 'none'})"
            )

    guard.__name__ = f"requires_{needed}"
    return guard
