"""The TTL rules of the read-through cache, against a real Redis, with a counting source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.io.cache import CacheOutcome, ReadThroughCache
from engine.io.embedded import EmbeddedValkey


class CountingSource:
    """A source that counts its calls and answers a new value each time."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
            value = f"value-{self.calls}".encode()
        time.sleep(self.delay)
        return value


@pytest.fixture
def redis_client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url)
    yield client
    client.close()


@pytest.fixture
def key(cache_prefix: str) -> str:
    return f"{cache_prefix}:counting:bars:abc"


def test_ttl_zero_calls_the_source_every_time_and_stores_it(
    redis_client: redis.Redis, key: str
) -> None:
    cache, source = ReadThroughCache(redis_client), CountingSource()

    results = [cache.get_or_fetch(key, 0, source) for _ in range(3)]

    assert source.calls == 3
    assert [value for value, _ in results] == [b"value-1", b"value-2", b"value-3"]
    assert {outcome for _, outcome in results} == {CacheOutcome.REFRESH}
    assert redis_client.get(key) == b"value-3"  # the fresh value is in Redis


def test_positive_ttl_serves_from_redis_until_expiry(redis_client: redis.Redis, key: str) -> None:
    cache, source = ReadThroughCache(redis_client), CountingSource()

    first = cache.get_or_fetch(key, 60, source)
    second = cache.get_or_fetch(key, 60, source)

    assert first == (b"value-1", CacheOutcome.MISS)
    assert second == (b"value-1", CacheOutcome.HIT)
    assert source.calls == 1
    assert 0 < redis_client.ttl(key) <= 60


def test_burst_of_50_concurrent_requests_calls_the_source_once(
    redis_client: redis.Redis, redis_server_url: str, key: str
) -> None:
    # Two cache objects (as in two processes) share one Redis: the lock is in Redis.
    caches = [
        ReadThroughCache(redis_client),
        ReadThroughCache(redis.Redis.from_url(redis_server_url)),
    ]
    source = CountingSource(delay=0.2)
    barrier = threading.Barrier(50)
    results: list[tuple[bytes, CacheOutcome]] = []

    def request(index: int) -> None:
        barrier.wait()
        results.append(caches[index % 2].get_or_fetch(key, 60, source))

    threads = [threading.Thread(target=request, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert source.calls == 1
    assert len(results) == 50
    assert {value for value, _ in results} == {b"value-1"}
    assert [outcome for _, outcome in results].count(CacheOutcome.MISS) == 1


def test_expired_entry_is_refetched(redis_client: redis.Redis, key: str) -> None:
    cache, source = ReadThroughCache(redis_client), CountingSource()

    assert cache.get_or_fetch(key, 1, source)[1] is CacheOutcome.MISS
    assert cache.get_or_fetch(key, 1, source)[1] is CacheOutcome.HIT
    deadline = time.monotonic() + 5
    while redis_client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)

    value, outcome = cache.get_or_fetch(key, 1, source)
    assert (value, outcome) == (b"value-2", CacheOutcome.MISS)
    assert source.calls == 2


def test_negative_ttl_is_refused(redis_client: redis.Redis, key: str) -> None:
    with pytest.raises(ValueError, match="TTL must be >= 0"):
        ReadThroughCache(redis_client).get_or_fetch(key, -1, CountingSource())


def test_a_stopped_redis_never_stops_the_fetch(state_dir: Path) -> None:
    server = EmbeddedValkey(state_dir / "valkey")
    url = server.start_or_attach()
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    cache, source = ReadThroughCache(client, retry_redis_after=60), CountingSource()
    assert cache.get_or_fetch("k", 60, source)[1] is CacheOutcome.MISS
    server.stop()

    outcomes = [cache.get_or_fetch("k", 60, source)[1] for _ in range(3)]

    assert outcomes == [CacheOutcome.BYPASS] * 3
    assert source.calls == 4
    assert cache.stats["errors"] == 1  # then Redis is skipped for retry_redis_after seconds
    assert cache.stats["bypass"] == 3


def test_cache_resumes_when_redis_returns(state_dir: Path) -> None:
    server = EmbeddedValkey(state_dir / "valkey")
    url = server.start_or_attach()
    port = server.port
    server.stop()
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    cache, source = ReadThroughCache(client, retry_redis_after=0.0), CountingSource()
    assert cache.get_or_fetch("k", 60, source)[1] is CacheOutcome.BYPASS

    (state_dir / "valkey" / "port").write_text(str(port))  # restart on the same port
    restarted = EmbeddedValkey(state_dir / "valkey")
    restarted.start_or_attach()
    try:
        assert restarted.port == port
        assert cache.get_or_fetch("k", 60, source)[1] is CacheOutcome.MISS
        assert cache.get_or_fetch("k", 60, source)[1] is CacheOutcome.HIT
    finally:
        restarted.stop()
