"""Reads behind the data-quality notebook."""

from __future__ import annotations

from engine.io.quality import cache_server_stats
from engine.settings import Settings


def test_cache_server_stats(settings: Settings) -> None:
    assert settings.redis_url is not None
    stats = cache_server_stats(settings.redis_url, settings.cache_prefix)
    assert stats["keys"] == 0
    assert stats["keyspace_hits"] >= 0
    unreachable = cache_server_stats("redis://127.0.0.1:9/0", "x", timeout=0.5)
    assert "error" in unreachable
