"""Reads behind the data-quality views: instruments' exchange calendars, recent ingest
runs, and the Redis server's own hit counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import redis

from engine.io.bars import find_ingest_runs
from engine.io.cache import client

__all__ = ["cache_server_stats", "instrument_calendars", "recent_ingest_runs", "stored_symbols"]


def stored_symbols(conn: psycopg.Connection, interval: str = "1d") -> list[str]:
    """Symbols with at least one stored `interval` bar, sorted."""
    rows = conn.execute(
        "SELECT i.symbol FROM instruments i WHERE EXISTS (SELECT 1 FROM bars b "
        "WHERE b.instrument_id = i.id AND b.interval = %s) ORDER BY i.symbol",
        (interval,),
    ).fetchall()
    return [str(symbol) for (symbol,) in rows]


def instrument_calendars(conn: psycopg.Connection, symbols: Sequence[str]) -> dict[str, str | None]:
    """The exchange calendar (e.g. XNYS) of each stored symbol of `symbols` (None: unknown)."""
    rows = conn.execute(
        "SELECT symbol, calendar FROM instruments WHERE symbol = ANY(%s) ORDER BY symbol",
        (list(symbols),),
    ).fetchall()
    return {str(symbol): calendar for symbol, calendar in rows}


def recent_ingest_runs(conn: psycopg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest `limit` ingest runs (newest first) with counts, quality report and cache
    outcomes (`quality.cache`)."""
    rows, _ = find_ingest_runs(conn, limit=limit)
    return rows


def cache_server_stats(redis_url: str, prefix: str, *, timeout: float = 2.0) -> dict[str, Any]:
    """The Redis server's lookups since it started (keyspace hits and misses, every client:
    provider cache and API reads) and how many keys RegimeLab holds under `prefix`; an
    `error` entry instead when Redis cannot be reached."""
    redis_client = client(redis_url, timeout=timeout)
    try:
        info: dict[str, Any] = redis_client.info("stats")
        keys = sum(1 for _ in redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    except redis.RedisError as exc:
        return {"error": str(exc)}
    finally:
        redis_client.close()
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    return {
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
        "keys": keys,
    }
