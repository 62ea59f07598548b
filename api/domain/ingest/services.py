"""Ingest requests checked up front, ingest runs, providers and their cache TTLs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
import psycopg
from anyio import to_thread
from litestar.exceptions import NotFoundException, PermissionDeniedException

from api.domain.ingest.schemas import (
    MAX_SYMBOLS,
    IngestCreate,
    IngestParams,
    IngestRun,
    ProviderCredential,
    ProviderDataset,
    ProviderInfo,
    ProviderTtl,
)
from api.domain.market.schemas import SYMBOL_PATTERN
from api.domain.market.services import invalid, time_range
from api.lib.deps import Database
from api.lib.jobs import JobRunner
from api.lib.pagination import Page, Pagination
from engine.errors import RegimeLabError
from engine.ingest.pipeline import IngestRequest
from engine.ingest.service import build_request
from engine.io.api_keys import ApiKey
from engine.io.bars import (
    delete_provider_ttl,
    find_ingest_runs,
    get_ingest_run,
    provider_ttls,
    set_provider_ttl,
)
from engine.io.cache import ReadThroughCache
from engine.providers.base import Fetcher, Provider, ProviderContext
from engine.providers.errors import ProviderError, UnknownProviderError
from engine.providers.fetch import fetch
from engine.providers.registry import get_provider, providers
from engine.providers.standard.instruments import InstrumentsQuery
from engine.settings import Settings

__all__ = [
    "checked_ingest",
    "forget_ttl",
    "ingest_run",
    "ingest_run_page",
    "provider_page",
    "start_ingest",
    "store_ttl",
    "ttl_page",
]

_QUERY_FIELDS: Final = frozenset({"symbols", "start", "end", "interval"})
_INSTRUMENT_CHUNK: Final = 1000  # the most symbols one instruments query may name
_SYMBOL: Final = re.compile(SYMBOL_PATTERN)


def _provider(name: str) -> Provider:
    try:
        return get_provider(name)
    except UnknownProviderError as exc:
        raise invalid("provider", str(exc)) from None


def _request(data: IngestCreate, provider: Provider) -> IngestRequest:
    """The engine's request for `data`, its symbols resolved by the provider."""
    fetcher = provider.fetcher("bars")
    if data.interval not in fetcher.intervals:
        raise invalid(
            "interval",
            f"provider {provider.name} does not offer interval {data.interval!r}; "
            f"choose one of {', '.join(fetcher.intervals)}",
        )
    shadowed = sorted(_QUERY_FIELDS & set(data.options))
    if shadowed:
        raise invalid("options", f"set {', '.join(shadowed)} as fields, not in options")
    start, end = time_range(data.start, data.end)
    text = ",".join(data.symbols) if isinstance(data.symbols, list) else data.symbols
    try:
        request = build_request(
            provider.name,
            text,
            start=start,
            end=end,
            interval=data.interval,
            full=data.full,
            options=data.options,
        )
    except (RegimeLabError, ValueError) as exc:
        message = str(exc) if text else f"symbols are required for provider {provider.name}"
        raise invalid("symbols", message) from None
    malformed = [s for s in request.symbols if not _SYMBOL.fullmatch(s)]
    if malformed:
        raise invalid(
            "symbols", f"symbols have no spaces, control characters or '/': {malformed[:5]}"
        )
    if len(request.symbols) > MAX_SYMBOLS:
        raise invalid(
            "symbols",
            f"{len(request.symbols)} symbols asked; the API loads at most {MAX_SYMBOLS} "
            "per request (use several requests or the CLI)",
        )
    return request


def _check_query(request: IngestRequest, fetcher: Fetcher) -> None:
    """400 unless the provider's bars query accepts the request and its options."""
    if b"\\u0000" in msgspec.json.encode(request.options):  # Postgres JSON holds no NUL
        raise invalid("options", "options must not contain NUL characters")
    try:
        msgspec.convert(
            {
                "symbols": request.symbols,
                "start": request.start,
                "end": request.end,
                "interval": request.interval,
                **request.options,
            },
            fetcher.query_type,
            strict=False,
        )
    except (msgspec.ValidationError, ValueError, TypeError, ArithmeticError) as exc:
        raise invalid("options", f"invalid ingest request: {exc}") from None


def _listed(provider: Provider, symbols: Sequence[str]) -> set[str] | None:
    """Which of `symbols` an offline provider lists (None: it can't say without the network)."""
    fetcher = provider.fetchers.get("instruments")
    if provider.network or fetcher is None:
        return None
    listed: set[str] = set()
    for index in range(0, len(symbols), _INSTRUMENT_CHUNK):
        chunk = tuple(symbols[index : index + _INSTRUMENT_CHUNK])
        try:
            frame = fetch(
                provider,
                fetcher,
                InstrumentsQuery(symbols=chunk, limit=len(chunk)),
                context=ProviderContext(),
                cache=ReadThroughCache(None),
                ttl=0,
            ).frame
        except (ProviderError, ValueError):
            return None
        listed.update(frame["symbol"].to_list())
    return listed


def checked_ingest(data: IngestCreate) -> IngestParams:
    """The `ingest` job's parameters for `data`; 400 naming the choices for an unknown
    provider or interval, unknown symbols (where the provider can tell offline), bad
    options or an inverted range."""
    provider = _provider(data.provider)
    request = _request(data, provider)
    _check_query(request, provider.fetcher("bars"))
    listed = _listed(provider, request.symbols) if request.symbols != ("*",) else None
    if listed is not None:
        unknown = [s for s in request.symbols if s not in listed]
        if unknown:
            shown = ", ".join(map(repr, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
            raise invalid("symbols", f"provider {provider.name} does not know {shown}")
    return IngestParams(
        provider=request.provider,
        symbols=list(request.symbols),
        start=request.start,
        end=request.end,
        interval=request.interval,
        full=request.full,
        options=dict(request.options),
    )


async def start_ingest(jobs: JobRunner, data: IngestCreate, api_key: ApiKey | None) -> int:
    """Check `data` and queue an `ingest` job; its id."""
    if data.provider == "files" and (api_key is None or not api_key.allows("admin")):
        # it reads any path the server can: not something a write key may point anywhere
        raise PermissionDeniedException(
            detail="ingesting from the files provider reads server paths: it needs an admin key"
        )
    params = await to_thread.run_sync(checked_ingest, data)
    job_id = await jobs.submit("ingest", params)
    assert job_id is not None, "jobs without a slot key always run"
    return job_id


# -- ingest runs ------------------------------------------------------------------------------


async def ingest_run_page(
    database: Database, page: Pagination, provider: str | None, status: str | None
) -> Page[IngestRun]:
    """Ingest runs, newest first, optionally of one provider or status."""
    rows, total = await database.run(
        lambda conn: find_ingest_runs(
            conn, provider=provider, status=status, limit=page.limit, offset=page.offset
        )
    )
    return page.page([msgspec.convert(row, IngestRun) for row in rows], total)


async def ingest_run(database: Database, run_id: int) -> IngestRun:
    """The ingest run `run_id`; 404 if there is none."""
    row = await database.run(lambda conn: get_ingest_run(conn, run_id))
    if row is None:
        raise NotFoundException(detail=f"no ingest run {run_id}")
    return msgspec.convert(row, IngestRun)


# -- providers and TTLs -----------------------------------------------------------------------


def _info(provider: Provider, configured: Mapping[str, str]) -> ProviderInfo:
    credentials = [
        ProviderCredential(name=name, configured=bool(configured.get(name)))
        for name in provider.credentials
    ]
    return ProviderInfo(
        name=provider.name,
        description=provider.description,
        network=provider.network,
        calendar=provider.calendar,
        credentials=credentials,
        credentials_configured=all(c.configured for c in credentials),
        datasets=[
            ProviderDataset(
                dataset=fetcher.dataset,
                intervals=list(fetcher.intervals),
                default_ttl_seconds=fetcher.default_ttl,
                max_symbols=fetcher.max_symbols,
            )
            for fetcher in provider.fetchers.values()
        ],
    )


async def provider_page(settings: Settings, page: Pagination) -> Page[ProviderInfo]:
    """Every provider with its datasets and whether its credentials are set."""
    every = await to_thread.run_sync(providers)  # first call imports the provider modules
    configured = settings.credentials
    infos = [_info(p, configured) for p in every]
    return page.page(infos[page.offset : page.offset + page.limit], len(infos))


def _fetcher(provider_name: str, dataset: str) -> Fetcher:
    """The fetcher of `provider_name`'s `dataset`; 404 if either is unknown."""
    try:
        return get_provider(provider_name).fetcher(dataset)
    except UnknownProviderError as exc:
        raise NotFoundException(detail=str(exc)) from None


def _effective(
    provider: str,
    fetcher: Fetcher,
    stored: Mapping[tuple[str, str], tuple[int, datetime]],
    overrides: Mapping[tuple[str, str], int],
) -> ProviderTtl:
    """The TTL ingest will use: the table's, else the settings', else the default."""
    key = (provider, fetcher.dataset)
    common: dict[str, Any] = {
        "provider": provider,
        "dataset": fetcher.dataset,
        "default_ttl_seconds": fetcher.default_ttl,
    }
    if key in stored:
        seconds, updated_at = stored[key]
        return ProviderTtl(**common, ttl_seconds=seconds, source="table", updated_at=updated_at)
    if key in overrides:
        return ProviderTtl(**common, ttl_seconds=overrides[key], source="settings")
    return ProviderTtl(**common, ttl_seconds=fetcher.default_ttl, source="default")


async def ttl_page(database: Database, settings: Settings, page: Pagination) -> Page[ProviderTtl]:
    """The effective TTL of every provider dataset and where it comes from."""
    every = await to_thread.run_sync(providers)
    stored = await database.run(provider_ttls)
    overrides = settings.ttl_overrides
    ttls = [
        _effective(p.name, fetcher, stored, overrides)
        for p in every
        for fetcher in p.fetchers.values()
    ]
    return page.page(ttls[page.offset : page.offset + page.limit], len(ttls))


async def store_ttl(
    database: Database, settings: Settings, provider: str, dataset: str, seconds: int
) -> ProviderTtl:
    """Set the TTL of one provider dataset in the table; 404 if either is unknown."""
    fetcher = await to_thread.run_sync(_fetcher, provider, dataset)

    def write(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[int, datetime]]:
        set_provider_ttl(conn, provider, dataset, seconds)
        return provider_ttls(conn)

    stored = await database.run(write)
    return _effective(provider, fetcher, stored, settings.ttl_overrides)


async def forget_ttl(database: Database, provider: str, dataset: str) -> None:
    """Drop the table's TTL of one provider dataset (settings or the default apply again)."""
    await to_thread.run_sync(_fetcher, provider, dataset)
    await database.run(lambda conn: delete_provider_ttl(conn, provider, dataset))
