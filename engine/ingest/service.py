"""Ingest as the CLI, the scheduler and the API call it: settings in, a recorded run out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import polars as pl

from engine.ingest.pipeline import IngestError, IngestRequest, IngestResult, Progress, ingest
from engine.io.cache import ReadThroughCache, client
from engine.io.http import HttpClient
from engine.providers.base import ProviderContext
from engine.providers.fetch import fetch
from engine.providers.registry import get_provider
from engine.providers.standard.instruments import InstrumentsQuery
from engine.settings import Settings

__all__ = ["build_request", "make_cache", "run_ingest", "search_instruments"]


def make_cache(redis_url: str | None, settings: Settings) -> ReadThroughCache:
    """The provider cache on `redis_url` (None: no Redis, every call goes to the source)."""
    redis_client = (
        client(redis_url, timeout=min(settings.connect_timeout, 2.0)) if redis_url else None
    )
    return ReadThroughCache(redis_client)


def build_request(
    provider: str,
    symbols: str | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str = "1d",
    full: bool = False,
    options: Mapping[str, Any] | None = None,
) -> IngestRequest:
    """An IngestRequest from user text: the provider resolves the symbol list (aliases, counts)."""
    resolved = get_provider(provider).resolve_symbols(symbols) if symbols else ()
    if not resolved:
        if provider != "files":
            raise IngestError(f"--symbols is required for provider {provider}")
        resolved = ("*",)
    return IngestRequest(
        provider=provider,
        symbols=resolved,
        start=start,
        end=end,
        interval=interval,
        full=full,
        options=dict(options or {}),
    )


def run_ingest(
    settings: Settings,
    request: IngestRequest,
    *,
    database_url: str,
    redis_url: str | None,
    progress: Progress | None = None,
) -> IngestResult:
    """Run `request` with the configured credentials, TTL overrides and cache."""
    cache = make_cache(redis_url, settings)
    return ingest(
        request,
        database_url=database_url,
        cache=cache,
        cache_prefix=settings.cache_prefix,
        credentials=settings.credentials,
        base_urls=settings.base_urls,
        ttl_overrides=settings.ttl_overrides,
        progress=progress,
        timeout=settings.connect_timeout,
    )


def search_instruments(
    settings: Settings, provider: str, text: str, *, limit: int = 50, redis_url: str | None = None
) -> pl.DataFrame:
    """A provider's instruments matching `text`, through the cache."""
    source = get_provider(provider)
    fetcher = source.fetcher("instruments")
    http = HttpClient() if source.network else None
    try:
        context = ProviderContext(
            credentials=settings.credentials, http=http, base_urls=settings.base_urls
        )
        ttl = settings.ttl_overrides.get((provider, "instruments"), fetcher.default_ttl)
        return fetch(
            source,
            fetcher,
            InstrumentsQuery(search=text, limit=limit),
            context=context,
            cache=make_cache(redis_url, settings),
            ttl=ttl,
            prefix=settings.cache_prefix,
        ).frame
    finally:
        if http is not None:
            http.close()
