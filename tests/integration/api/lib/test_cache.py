"""The API response cache on real Redis: TTL rules, data-version invalidation, Redis down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest
import redis.asyncio

from api.lib.cache import ResponseCache
from engine.errors import ConfigError
from engine.io.cache import CacheOutcome, bump_versions, client


class Snapshot(msgspec.Struct):
    symbol: str
    regime: int


def _counting(body: bytes) -> tuple[list[int], Callable[[], Awaitable[bytes]]]:
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        return body + str(len(calls)).encode()

    return calls, compute


def _run[T](work: Callable[[redis.asyncio.Redis], Awaitable[T]], url: str) -> T:
    async def main() -> T:
        async with redis.asyncio.Redis.from_url(url) as redis_client:
            return await work(redis_client)

    return asyncio.run(main())


def test_positive_ttl_serves_the_stored_body(redis_server_url: str, cache_prefix: str) -> None:
    calls, compute = _counting(b"body-")

    async def work(r: redis.asyncio.Redis) -> list[tuple[bytes, CacheOutcome]]:
        cache = ResponseCache(r, cache_prefix, {})
        params = {"symbols": "SPX"}
        return [
            await cache.body("regimes.snapshot", params, ["regimes"], compute) for _ in range(3)
        ]

    served = _run(work, redis_server_url)

    assert [outcome for _, outcome in served] == ["miss", "hit", "hit"]
    assert {body for body, _ in served} == {b"body-1"}
    assert len(calls) == 1


def test_zero_ttl_always_recomputes_then_stores(redis_server_url: str, cache_prefix: str) -> None:
    calls, compute = _counting(b"x")

    async def work(r: redis.asyncio.Redis) -> list[tuple[bytes, CacheOutcome]]:
        cache = ResponseCache(r, cache_prefix, {"bars": 0})
        return [
            await cache.body("bars", {"symbol": "SPX"}, ["bars:SPX"], compute) for _ in range(2)
        ]

    served = _run(work, redis_server_url)

    assert served == [(b"x1", CacheOutcome.REFRESH), (b"x2", CacheOutcome.REFRESH)]
    assert len(calls) == 2
    raw = client(redis_server_url)
    try:
        assert len(list(raw.scan_iter(match=f"{cache_prefix}:api:bars:*"))) == 1
    finally:
        raw.close()


def test_bumping_a_dependency_invalidates_only_its_entries(
    redis_server_url: str, cache_prefix: str
) -> None:
    spx_calls, spx = _counting(b"spx")
    ixic_calls, ixic = _counting(b"ixic")
    raw = client(redis_server_url)

    async def work(r: redis.asyncio.Redis) -> list[bytes]:
        cache = ResponseCache(r, cache_prefix, {})
        out = [
            (await cache.body("bars", {"s": "SPX"}, ["bars:SPX"], spx))[0],
            (await cache.body("bars", {"s": "IXIC"}, ["bars:IXIC"], ixic))[0],
        ]
        bump_versions(raw, cache_prefix, ["bars:SPX"])  # new SPX bars were ingested
        out.append((await cache.body("bars", {"s": "SPX"}, ["bars:SPX"], spx))[0])
        out.append((await cache.body("bars", {"s": "IXIC"}, ["bars:IXIC"], ixic))[0])
        return out

    try:
        bodies = _run(work, redis_server_url)
    finally:
        raw.close()

    assert bodies == [b"spx1", b"ixic1", b"spx2", b"ixic1"]
    assert (len(spx_calls), len(ixic_calls)) == (2, 1)


def test_typed_values_round_trip(redis_server_url: str, cache_prefix: str) -> None:
    async def compute() -> Snapshot:
        return Snapshot("SPX", 2)

    async def work(r: redis.asyncio.Redis) -> list[Snapshot]:
        cache = ResponseCache(r, cache_prefix, {})
        return [
            await cache.value("regimes.snapshot", {}, ["regimes"], compute, Snapshot)
            for _ in range(2)
        ]

    assert _run(work, redis_server_url) == [Snapshot("SPX", 2), Snapshot("SPX", 2)]


def test_redis_down_computes_every_time() -> None:
    _, compute = _counting(b"b")

    async def main() -> list[tuple[bytes, CacheOutcome]]:
        async with redis.asyncio.Redis.from_url(
            "redis://127.0.0.1:1/0", socket_connect_timeout=0.5
        ) as r:
            cache = ResponseCache(r, "p", {})
            return [await cache.body("bars", {}, [], compute) for _ in range(2)]

    assert asyncio.run(main()) == [(b"b1", CacheOutcome.BYPASS), (b"b2", CacheOutcome.BYPASS)]


def test_unknown_route_in_overrides_is_a_config_error(redis_server_url: str) -> None:
    with pytest.raises(ConfigError, match="unknown route"):
        ResponseCache(redis.asyncio.Redis.from_url(redis_server_url), "p", {"nope": 1})
