"""Market reads and writes: stored instruments, their bars in four formats, their features.

Every read goes through the response cache with the data versions it depends on
(`instruments`, `bars:<SYMBOL>`), which ingest runs bump, so a new load shows at once.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache as memoized
from typing import Any, Final

import msgspec
import polars as pl
import psycopg
from anyio import to_thread
from litestar.datastructures import Accept
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_409_CONFLICT

from api.domain.market.schemas import (
    BAR_MEDIA_TYPES,
    Bar,
    BarCoverage,
    BarFormat,
    BarSeries,
    FeatureSeries,
    Instrument,
    InstrumentCreate,
)
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.pagination import Page, Pagination
from engine.features.names import FEATURE_NAMES, FeatureName
from engine.features.pipeline import FEATURES, feature_names, with_features
from engine.io.bars import (
    bar_coverage,
    bars_before,
    create_instrument,
    find_instruments,
    get_instrument,
    load_bars,
)
from engine.io.cache import CacheOutcome
from engine.providers.errors import UnknownProviderError
from engine.providers.registry import get_provider
from engine.providers.standard.bars import Interval, to_utc_datetime
from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

__all__ = [
    "DEFAULT_FEATURES",
    "BarsRequest",
    "FeaturesRequest",
    "add_instrument",
    "bar_format",
    "bars_body",
    "chosen_features",
    "instrument",
    "instrument_page",
    "invalid",
    "parse_time",
    "symbol_features",
    "time_range",
]

log = logging.getLogger(__name__)

DEFAULT_FEATURES: Final[tuple[FeatureName, ...]] = (
    "log_return",
    "realized_vol_20d",
    "realized_vol_60d",
    "trend_slope_20d",
    "momentum_63d",
    "drawdown",
)
_BAR_COLUMNS: Final = (SYMBOL, TS, OPEN, HIGH, LOW, CLOSE, VOLUME, ADJ_CLOSE)
_CSV_TS: Final = "%Y-%m-%dT%H:%M:%S%.fZ"


def invalid(key: str, message: str) -> ValidationException:
    """A 400 naming the offending input."""
    return ValidationException(detail=message, extra=[{"key": key, "message": message}])


def parse_time(value: str | None, key: str) -> datetime | None:
    """`value` (YYYY-MM-DD or an ISO 8601 / RFC 3339 datetime) as a UTC datetime; naive
    values are taken as UTC."""
    if value is None or not value.strip():
        return None
    try:
        return to_utc_datetime(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        raise invalid(
            key, f"{key} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime"
        ) from None


def time_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """Parsed `start` and `end`; a 400 if start is after end."""
    first, last = parse_time(start, "start"), parse_time(end, "end")
    if first is not None and last is not None and first > last:
        raise invalid("start", f"start {first.isoformat()} is after end {last.isoformat()}")
    return first, last


# -- instruments ------------------------------------------------------------------------------


def _instruments(conn: psycopg.Connection, rows: Sequence[dict[str, Any]]) -> list[Instrument]:
    coverage: dict[str, list[BarCoverage]] = {}
    for row in bar_coverage(conn, [r["symbol"] for r in rows]):
        coverage.setdefault(row.pop("symbol"), []).append(msgspec.convert(row, BarCoverage))
    return [
        msgspec.convert({**row, "coverage": coverage.get(row["symbol"], [])}, Instrument)
        for row in rows
    ]


async def instrument_page(
    database: Database,
    cache: ResponseCache,
    page: Pagination,
    search: str | None,
    asset_class: str | None,
) -> Page[Instrument]:
    """Stored instruments matching `search` (symbol or name) and `asset_class`, by symbol."""

    def read(conn: psycopg.Connection) -> Page[Instrument]:
        rows, total = find_instruments(
            conn, search=search, asset_class=asset_class, limit=page.limit, offset=page.offset
        )
        return page.page(_instruments(conn, rows), total)

    async def compute() -> Page[Instrument]:
        return await database.run(read)

    params = {"q": search, "asset_class": asset_class, "limit": page.limit, "offset": page.offset}
    return await cache.value("instruments", params, ["instruments"], compute, Page[Instrument])


def _unknown_symbol(symbol: str) -> NotFoundException:
    return NotFoundException(detail=f"no stored instrument {symbol!r}")


async def instrument(database: Database, cache: ResponseCache, symbol: str) -> Instrument:
    """The stored instrument `symbol` with its bar coverage; 404 if unknown."""

    def read(conn: psycopg.Connection) -> Instrument | None:
        row = get_instrument(conn, symbol)
        return _instruments(conn, [row])[0] if row else None

    async def compute() -> Instrument:
        found = await database.run(read)
        if found is None:
            raise _unknown_symbol(symbol)
        return found

    return await cache.value(
        "instruments", {"symbol": symbol}, ["instruments"], compute, Instrument
    )


@memoized
def _calendar_names() -> frozenset[str]:
    import exchange_calendars as xcals  # slow import (pandas): only when a calendar is given

    return frozenset(xcals.get_calendar_names(include_aliases=True))


async def add_instrument(
    database: Database, cache: ResponseCache, data: InstrumentCreate
) -> Instrument:
    """Store a described instrument; 400 for an unknown provider or calendar, 409 if stored."""
    try:  # the first use of a provider imports its module (seconds): off the event loop
        await to_thread.run_sync(get_provider, data.provider)
    except UnknownProviderError as exc:
        raise invalid("provider", str(exc)) from None
    if data.calendar is not None and data.calendar not in await to_thread.run_sync(_calendar_names):
        raise invalid(
            "calendar", f"unknown exchange calendar {data.calendar!r} (e.g. XNYS, XNAS, XLON)"
        )
    fields = msgspec.structs.asdict(data)
    created = await database.run(lambda conn: create_instrument(conn, **fields))
    if not created:
        raise ClientException(
            detail=f"instrument {data.symbol!r} already exists", status_code=HTTP_409_CONFLICT
        )
    await cache.invalidate("instruments")
    return Instrument(**fields, is_active=True, coverage=[])


# -- bars -------------------------------------------------------------------------------------


def bar_format(requested: BarFormat | None, accept: Accept) -> BarFormat:
    """`format=` if given, else the best `Accept` match; JSON when nothing matches."""
    if requested is not None:
        return requested
    by_media_type = {media_type: name for name, media_type in BAR_MEDIA_TYPES.items()}
    best = accept.best_match(list(by_media_type), default=BAR_MEDIA_TYPES["json"])
    return by_media_type.get(best, "json")


@dataclass(frozen=True, slots=True)
class BarsRequest:
    """Which bars to send, and how."""

    symbol: str
    start: datetime | None
    end: datetime | None
    interval: Interval
    format: BarFormat

    @property
    def media_type(self) -> str:
        """The response's content type."""
        return BAR_MEDIA_TYPES[self.format]

    def cache_params(self) -> dict[str, object]:
        """What the cached body depends on besides the stored bars."""
        return {
            "symbol": self.symbol,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "interval": self.interval,
            "format": self.format,
        }


def _stored_bars(conn: psycopg.Connection, request: BarsRequest) -> pl.DataFrame | None:
    if get_instrument(conn, request.symbol) is None:
        return None
    return load_bars(
        conn, [request.symbol], start=request.start, end=request.end, interval=request.interval
    )


def _encode(frame: pl.DataFrame, request: BarsRequest) -> bytes:
    """The bars in the requested format (files hold the canonical bar frame, symbol first)."""
    columns = frame.select(_BAR_COLUMNS)
    if request.format == "csv":
        return columns.write_csv(datetime_format=_CSV_TS).encode()
    if request.format in {"parquet", "arrow"}:
        buffer = io.BytesIO()
        if request.format == "parquet":
            columns.write_parquet(buffer)
        else:
            columns.write_ipc(buffer)
        return buffer.getvalue()
    bars = [Bar(**row) for row in columns.drop(SYMBOL).iter_rows(named=True)]
    return msgspec.json.encode(
        BarSeries(symbol=request.symbol, interval=request.interval, bars=bars)
    )


async def bars_body(
    database: Database, cache: ResponseCache, request: BarsRequest
) -> tuple[bytes, CacheOutcome]:
    """The encoded bars of `request` and how the cache served them; 404 for an unknown symbol."""

    async def compute() -> bytes:
        frame = await database.run(lambda conn: _stored_bars(conn, request))
        if frame is None:
            raise _unknown_symbol(request.symbol)
        return await to_thread.run_sync(_encode, frame, request)

    return await cache.body("bars", request.cache_params(), [f"bars:{request.symbol}"], compute)


# -- features ---------------------------------------------------------------------------------


def chosen_features(names: str | None) -> tuple[FeatureName, ...]:
    """Feature names from a comma-separated list (none: DEFAULT_FEATURES); 400 naming the
    available ones if one is unknown."""
    wanted = [n.strip() for n in (names or "").split(",") if n.strip()]
    if not wanted:
        return DEFAULT_FEATURES
    try:
        return feature_names(wanted)
    except ValueError:
        unknown = ", ".join(repr(n) for n in wanted if n not in FEATURES)
        raise invalid(
            "features",
            f"unknown feature(s) {unknown}; available features: {', '.join(FEATURE_NAMES)}",
        ) from None


@dataclass(frozen=True, slots=True)
class FeaturesRequest:
    """Which features of which bars to compute."""

    symbol: str
    start: datetime | None
    end: datetime | None
    interval: Interval
    names: tuple[FeatureName, ...]

    @property
    def warmup(self) -> int:
        """Bars before `start` the slowest feature needs."""
        return max(FEATURES[name].warmup for name in self.names)

    def cache_params(self) -> dict[str, object]:
        """What the cached features depend on besides the stored bars."""
        return {
            "symbol": self.symbol,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "interval": self.interval,
            "features": list(self.names),
        }


def _warm_bars(conn: psycopg.Connection, request: FeaturesRequest) -> pl.DataFrame | None:
    """Bars up to `end` from `warmup` bars before `start`; None if the symbol is unknown."""
    if get_instrument(conn, request.symbol) is None:
        return None
    start = request.start
    load_from = (
        bars_before(conn, request.symbol, request.interval, start, request.warmup)
        if start
        else None
    )
    return load_bars(
        conn, [request.symbol], start=load_from, end=request.end, interval=request.interval
    )


def _features(bars: pl.DataFrame, request: FeaturesRequest) -> pl.DataFrame:
    """The requested features over `bars`, from `start` on."""
    features = with_features(bars.lazy(), request.names)
    if request.start is not None:
        features = features.filter(pl.col(TS) >= request.start)
    return features.select(TS, *request.names).collect()


async def symbol_features(
    database: Database, cache: ResponseCache, request: FeaturesRequest
) -> FeatureSeries:
    """The requested features of one symbol, column by column; 404 for an unknown symbol."""

    async def compute() -> FeatureSeries:
        bars = await database.run(lambda conn: _warm_bars(conn, request))
        if bars is None:
            raise _unknown_symbol(request.symbol)
        frame = await to_thread.run_sync(_features, bars, request)
        return FeatureSeries(
            symbol=request.symbol,
            interval=request.interval,
            features=list(request.names),
            ts=frame[TS].to_list(),
            values={name: frame[name].to_list() for name in request.names},
        )

    return await cache.value(
        "features", request.cache_params(), [f"bars:{request.symbol}"], compute, FeatureSeries
    )
