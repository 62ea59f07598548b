"""Health checks against the API's own pool and Redis client."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

import redis.asyncio
from psycopg_pool import AsyncConnectionPool

from api.domain.system.schemas import ComponentHealth, Health, Readiness

__all__ = ["app_version", "check_health", "check_readiness"]

_CHECK_TIMEOUT = 2.0


def app_version() -> str:
    """The installed RegimeLab version."""
    try:
        return version("regimelab")
    except PackageNotFoundError:
        return "0.0.0"


def _error(exc: BaseException) -> ComponentHealth:
    text = str(exc).strip().splitlines()
    return ComponentHealth(status="error", detail=text[0] if text else type(exc).__name__)


async def _check_database(pool: AsyncConnectionPool) -> ComponentHealth:
    started = time.perf_counter()
    try:
        async with pool.connection(timeout=_CHECK_TIMEOUT) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure is a status to report, not a crash
        return _error(exc)
    return ComponentHealth(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 3))


async def _check_cache(client: redis.asyncio.Redis) -> ComponentHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(client.ping(), timeout=_CHECK_TIMEOUT)
    except Exception as exc:
        return _error(exc)
    return ComponentHealth(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 3))


async def check_health(pool: AsyncConnectionPool, cache: redis.asyncio.Redis) -> Health:
    """Database and cache status, checked concurrently."""
    database, cache_health = await asyncio.gather(_check_database(pool), _check_cache(cache))
    healthy = database.status == "ok" and cache_health.status == "ok"
    return Health(
        status="ok" if healthy else "degraded",
        version=app_version(),
        database=database,
        cache=cache_health,
    )


async def check_readiness(
    pool: AsyncConnectionPool,
    cache: redis.asyncio.Redis,
    scheduler: Literal["leader", "follower", "disabled"],
) -> Readiness:
    """Ready when the database answers; says how the cache is and whether this replica leads
    the scheduler. Redis is not required: without it reads are computed from Postgres, so a
    Redis outage must not take every replica out of a load balancer."""
    database, cache_health = await asyncio.gather(_check_database(pool), _check_cache(cache))
    return Readiness(
        ready=database.status == "ok",
        database=database,
        cache=cache_health,
        scheduler=scheduler,
    )
