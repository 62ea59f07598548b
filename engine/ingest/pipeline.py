"""An ingest run: fetch through the cache, check quality, load in atomic batches, record it.

Each run is one `ingest_runs` row (running, then succeeded or failed with the reason).
Symbols are fetched in the provider's chunk size; checked rows accumulate into batches that
are written in one transaction each, so a failure never leaves a partial batch, and a
re-run fetches only what is missing (incremental from each symbol's last stored bar).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from engine.errors import DatabaseUnavailableError, RegimeLabError
from engine.ingest.quality import QualityReport, calendar_gaps, check_bars
from engine.io.bars import (
    describe_instruments,
    ensure_instruments,
    last_bar_times,
    undescribed_instruments,
    upsert_bars,
    upsert_true_regimes,
)
from engine.io.cache import ReadThroughCache
from engine.io.db import connect
from engine.io.http import HttpClient
from engine.providers.base import Fetcher, Provider, ProviderContext
from engine.providers.errors import ProviderError
from engine.providers.fetch import fetch
from engine.providers.registry import get_provider
from engine.providers.standard.bars import BarsQuery, to_utc_datetime
from engine.providers.standard.instruments import InstrumentsQuery
from engine.schema import SYMBOL

__all__ = ["IngestError", "IngestRequest", "IngestResult", "ingest", "resolve_ttl"]

log = logging.getLogger(__name__)

BATCH_ROWS = 500_000
MAX_INSTRUMENTS_PER_QUERY = 1000
Progress = Callable[[int, int, str], None]
"""Called after each fetched chunk with (symbols done, symbols total, description)."""


class IngestError(RegimeLabError):
    """An ingest run failed; the message says why and names the run."""

    def __init__(self, message: str, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """What to load: a provider, its symbols, a range, an interval, provider options."""

    provider: str
    symbols: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    interval: str = "1d"
    full: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class IngestResult:
    """What a run did."""

    run_id: int
    status: str
    symbols: int = 0
    rows_fetched: int = 0
    rows_upserted: int = 0
    rows_rejected: int = 0
    true_regimes: int = 0
    quality: QualityReport = field(default_factory=QualityReport)
    cache: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def resolve_ttl(
    conn: psycopg.Connection,
    provider: str,
    dataset: str,
    default: int,
    overrides: Mapping[tuple[str, str], int],
) -> int:
    """TTL seconds: the provider_ttls table, else settings overrides, else the default."""
    row = conn.execute(
        "SELECT ttl_seconds FROM provider_ttls WHERE provider = %s AND dataset = %s",
        (provider, dataset),
    ).fetchone()
    if row is not None:
        return int(row[0])
    return overrides.get((provider, dataset), default)


def _build_query(fetcher: Fetcher, request: IngestRequest) -> BarsQuery:
    if request.interval not in fetcher.intervals:
        offered = ", ".join(fetcher.intervals)
        raise ValueError(f"interval {request.interval} is not offered (use one of {offered})")
    try:
        query = msgspec.convert(
            {
                "symbols": request.symbols,
                "start": to_utc_datetime(request.start),
                "end": to_utc_datetime(request.end),
                "interval": request.interval,
                **request.options,
            },
            fetcher.query_type,
            strict=False,
        )
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    assert isinstance(query, BarsQuery), "a bars fetcher's query type extends BarsQuery"
    return query


def _chunks(symbols: Sequence[str], size: int | None) -> Iterator[tuple[str, ...]]:
    step = size or max(len(symbols), 1)
    for index in range(0, len(symbols), step):
        yield tuple(symbols[index : index + step])


class _Run:
    """The `ingest_runs` row of one run, written on its own connection (autocommit)."""

    def __init__(
        self, conn: psycopg.Connection, request: IngestRequest, database_url: str, timeout: float
    ) -> None:
        self.conn = conn
        self._database_url = database_url
        self._timeout = timeout
        row = conn.execute(
            "INSERT INTO ingest_runs (provider, interval, symbols, start_date, end_date, "
            "full_refresh, status) VALUES (%s, %s, %s, %s, %s, %s, 'running') RETURNING id",
            (
                request.provider,
                request.interval,
                list(request.symbols),
                request.start,
                request.end,
                request.full,
            ),
        ).fetchone()
        assert row is not None
        self.id = int(row[0])

    def finish(self, result: IngestResult, *, patience: float = 60.0) -> None:
        """Record how the run ended, reconnecting while the database restarts (the failure
        being recorded may be that very restart); gives up after `patience` seconds, leaving
        the row to housekeeping."""
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                if self.conn.closed or self.conn.broken:
                    self.conn = connect(self._database_url, timeout=self._timeout, autocommit=True)
                self._write(result)
                return
            except (psycopg.OperationalError, DatabaseUnavailableError) as exc:
                if time.monotonic() + delay > deadline:
                    log.error("could not record the end of ingest run %d: %s", self.id, exc)
                    return
                log.warning("recording ingest run %d: %s; retrying", self.id, _one_line(exc))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _write(self, result: IngestResult) -> None:
        self.conn.execute(
            "UPDATE ingest_runs SET status = %s, rows_fetched = %s, rows_upserted = %s, "
            "rows_rejected = %s, quality = %s, error = %s, finished_at = now() WHERE id = %s",
            (
                result.status,
                result.rows_fetched,
                result.rows_upserted,
                result.rows_rejected,
                Jsonb({**result.quality.as_json(), "cache": result.cache}),
                result.error,
                self.id,
            ),
        )


class _Loader:
    """Accumulates checked frames and writes them in batches, one transaction each."""

    def __init__(
        self, database_url: str, provider: Provider, interval: str, timeout: float
    ) -> None:
        self.conn = connect(database_url, timeout=timeout)
        self.provider = provider
        self.interval = interval
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.upserted = 0
        self.true_regimes = 0
        self.symbols: set[str] = set()

    def add(self, frame: pl.DataFrame) -> None:
        self.pending.append(frame)
        self.pending_rows += frame.height
        if self.pending_rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch = pl.concat(self.pending, how="diagonal_relaxed")
        self.pending, self.pending_rows = [], 0
        symbols = batch[SYMBOL].unique(maintain_order=True).to_list()
        with self.conn.transaction():
            ids = ensure_instruments(
                self.conn, ((s, None) for s in symbols), self.provider.name, self.provider.calendar
            )
            self.upserted += upsert_bars(
                self.conn, batch, ids, provider=self.provider.name, interval=self.interval
            )
            self.true_regimes += upsert_true_regimes(self.conn, batch, ids, interval=self.interval)
        self.symbols.update(symbols)

    def close(self) -> None:
        self.conn.close()


def _incremental_start(
    query: BarsQuery, chunk: tuple[str, ...], last: Mapping[str, datetime], full: bool
) -> datetime | None:
    """Where to start fetching: the last stored bar (refetched: it may have been partial)."""
    if full or not chunk or any(symbol not in last for symbol in chunk):
        return query.start
    resume = min(last[symbol] for symbol in chunk)
    return max(resume, query.start) if query.start else resume


@dataclass(slots=True)
class _Fetching:
    """The fetch loop of one run: chunks through the cache, quality checks, the loader."""

    provider: Provider
    fetcher: Fetcher
    query: BarsQuery
    request: IngestRequest
    context: ProviderContext
    cache: ReadThroughCache
    cache_prefix: str
    ttl: int
    loader: _Loader
    result: IngestResult
    progress: Progress | None

    def run(self, last: Mapping[str, datetime]) -> None:
        done = 0
        total = len(self.query.symbols)
        for chunk in _chunks(self.query.symbols, self.fetcher.max_symbols):
            start = _incremental_start(self.query, chunk, last, self.request.full)
            outcome = self._one(self.query.with_symbols(chunk, start))
            done += len(chunk)
            if self.progress is not None:
                self.progress(done, total, f"{chunk[0]} ({outcome})")
        self.loader.flush()

    def describe_new_instruments(self, conn: psycopg.Connection) -> None:
        """Name the instruments this run created, from the provider's `instruments` dataset.

        Best effort: a provider without the dataset, or one that fails, leaves them unnamed.
        """
        fetcher = self.provider.fetchers.get("instruments")
        if fetcher is None:
            return
        loaded = self.query.symbols if self.query.symbols != ("*",) else ()
        size = min(fetcher.max_symbols or MAX_INSTRUMENTS_PER_QUERY, MAX_INSTRUMENTS_PER_QUERY)
        for chunk in _chunks(undescribed_instruments(conn, loaded), size):
            try:
                details = fetch(
                    self.provider,
                    fetcher,
                    InstrumentsQuery(symbols=chunk, limit=max(len(chunk), 1)),
                    context=self.context,
                    cache=self.cache,
                    ttl=fetcher.default_ttl,
                    prefix=self.cache_prefix,
                ).frame
            except (ProviderError, ValueError) as exc:
                log.warning("could not describe %d instrument(s): %s", len(chunk), exc)
                return
            describe_instruments(conn, details)

    def _one(self, query: BarsQuery) -> str:
        fetched = fetch(
            self.provider,
            self.fetcher,
            query,
            context=self.context,
            cache=self.cache,
            ttl=self.ttl,
            prefix=self.cache_prefix,
        )
        clean, report = check_bars(fetched.frame)
        if self.provider.calendar and self.request.interval == "1d":
            report.calendar_gaps, report.gap_examples = calendar_gaps(clean, self.provider.calendar)
        result = self.result
        result.quality.merge(report)
        result.rows_fetched += fetched.frame.height
        result.cache[fetched.outcome.value] = result.cache.get(fetched.outcome.value, 0) + 1
        result.symbols += clean[SYMBOL].n_unique() if clean.height else 0
        self.loader.add(clean)
        return fetched.outcome.value


def ingest(
    request: IngestRequest,
    *,
    database_url: str,
    cache: ReadThroughCache,
    cache_prefix: str = "regimelab",
    credentials: Mapping[str, str] | None = None,
    base_urls: Mapping[str, str] | None = None,
    ttl_overrides: Mapping[tuple[str, str], int] | None = None,
    http: HttpClient | None = None,
    progress: Progress | None = None,
    timeout: float = 5.0,
) -> IngestResult:
    """Run one ingest and return what it did; raises IngestError (run recorded) on failure."""
    provider = get_provider(request.provider)
    fetcher = provider.fetcher("bars")
    try:
        query = _build_query(fetcher, request)
    except ValueError as exc:  # bad input fails before a run is recorded
        raise IngestError(f"invalid ingest request: {_one_line(exc)}") from None
    owned_http = http is None and provider.network
    context = ProviderContext(
        credentials=credentials or {},
        http=HttpClient() if owned_http else http,
        base_urls=base_urls or {},
    )
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        run = _Run(conn, request, database_url, timeout)
        result = IngestResult(run_id=run.id, status="running")
        loader = _Loader(database_url, provider, request.interval, timeout)
        try:
            ttl = resolve_ttl(conn, provider.name, "bars", fetcher.default_ttl, ttl_overrides or {})
            last = {} if request.full else last_bar_times(conn, query.symbols, request.interval)
            fetching = _Fetching(
                provider,
                fetcher,
                query,
                request,
                context,
                cache,
                cache_prefix,
                ttl,
                loader,
                result,
                progress,
            )
            fetching.run(last)
            fetching.describe_new_instruments(conn)
            result.status = "succeeded"
        except (ProviderError, psycopg.Error, ValueError) as exc:
            result.status, result.error = "failed", _one_line(exc)
        finally:
            loader.close()
            if owned_http and context.http is not None:
                context.http.close()
            result.rows_upserted, result.true_regimes = loader.upserted, loader.true_regimes
            if loader.symbols:  # cached API reads of these series are stale now
                cache.bump_versions(
                    cache_prefix, ["instruments", *(f"bars:{s}" for s in sorted(loader.symbols))]
                )
            result.rows_rejected = result.quality.rows_rejected
            if result.status == "running":  # interrupted (Ctrl-C) or an unexpected error
                result.status, result.error = "failed", "interrupted before completion"
            run.finish(result)
    if result.status == "failed":
        raise IngestError(f"ingest run {run.id} failed: {result.error}", run.id)
    return result


def _one_line(exc: BaseException) -> str:
    """The first line of an error, printable (provider text can hold NULs and controls)."""
    text = "".join(c if c.isprintable() or c == "\n" else "?" for c in str(exc)).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
