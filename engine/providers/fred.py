"""`fred` provider: economic series from FRED, St. Louis Fed (needs FRED_API_KEY).

Documented endpoint: `GET /fred/series/observations?series_id=&api_key=&file_type=json
&observation_start=YYYY-MM-DD&observation_end=YYYY-MM-DD&limit=&offset=` answers
`{"count", "offset", "limit", "observations": [{"date": "YYYY-MM-DD", "value": "1.23"}]}`,
where a missing value is the string ".". More than `limit` observations (at most 100000)
are paged with `offset`. An unknown series is HTTP 400 with `"error_message":
"Bad Request.  The series does not exist."`.

A series is one value per date, so bars are close-only: open = high = low = close = value,
volume 0, "." dropped, stamped at 00:00 UTC of the observation date. Only the daily
interval is offered: a weekly or monthly series keeps its own dates. FRED's only way to
authenticate is the `api_key` query parameter. TTL 6 h: series update at most daily.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, Final

import msgspec
import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw, documented
from engine.providers.errors import ProviderRequestError, UnknownSymbolError
from engine.providers.standard.bars import BarsQuery
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "extract", "transform"]

NAME: Final = "fred"
DEFAULT_BASE_URL: Final = "https://api.stlouisfed.org"
CREDENTIAL: Final = "FRED_API_KEY"
PAGE_LIMIT: Final = 100_000
MISSING: Final = "."
"""FRED's marker for a date without a value."""

_OBSERVATION_SCHEMA: Final = {"date": pl.String, "value": pl.String}


class _Observation(msgspec.Struct):
    date: str
    value: str


class _ObservationsPage(msgspec.Struct):
    observations: list[_Observation]
    count: int | None = None


def _only_series(query: BarsQuery) -> str:
    if len(query.symbols) != 1:
        raise ValueError(f"{NAME} fetches one series per call, got {list(query.symbols)}")
    return query.symbols[0]


def _page(context: ProviderContext, url: str, params: dict[str, Any]) -> dict[str, Any]:
    """One documented page of observations, or the provider error that explains why not."""
    try:
        payload = context.client().get_json(url, provider=NAME, params=params)
    except ProviderRequestError as exc:
        if exc.status == 400 and "series does not exist" in exc.body:
            series = params["series_id"]
            raise UnknownSymbolError(
                f"{NAME}: unknown series {series!r} (does not exist)"
            ) from None
        raise
    documented(payload, _ObservationsPage, provider=NAME, what="observations")
    assert isinstance(payload, dict)
    return payload


def extract(query: BarsQuery, context: ProviderContext) -> Raw:
    """FRED's observation pages for the query's one series, oldest first (a list of pages)."""
    params: dict[str, Any] = {
        "series_id": _only_series(query),
        "api_key": context.credential(NAME, CREDENTIAL),
        "file_type": "json",
        "sort_order": "asc",
        "limit": PAGE_LIMIT,
        "offset": 0,
    }
    if query.start is not None:
        params["observation_start"] = f"{query.start.astimezone(UTC):%Y-%m-%d}"
    if query.end is not None:
        params["observation_end"] = f"{query.end.astimezone(UTC):%Y-%m-%d}"
    url = f"{context.base_url(NAME, DEFAULT_BASE_URL)}/fred/series/observations"
    pages: list[dict[str, Any]] = []
    while True:
        page = _page(context, url, params)
        pages.append(page)
        served = params["offset"] + len(page["observations"])
        if not page["observations"] or served >= (page.get("count") or 0):
            return pages
        params["offset"] = served


def transform(query: BarsQuery, raw: Raw) -> pl.DataFrame:
    """Close-only daily bars of the series (open = high = low = close, volume 0) in range."""
    assert isinstance(raw, list)
    frames = [pl.from_dicts(page["observations"], schema=_OBSERVATION_SCHEMA) for page in raw]
    observations = pl.concat(frames) if frames else pl.DataFrame(schema=_OBSERVATION_SCHEMA)
    value = pl.col("value").cast(pl.Float64)
    bars = observations.filter(pl.col("value") != MISSING).select(
        pl.lit(_only_series(query)).alias(SYMBOL),
        pl.col("date").str.to_date("%Y-%m-%d").cast(pl.Datetime("us", "UTC")).alias(TS),
        *(value.alias(name) for name in (OPEN, HIGH, LOW, CLOSE)),
        pl.lit(0.0).alias(VOLUME),
    )
    return validate_bars(bars.filter(query.in_range()).unique(TS, keep="last").sort(SYMBOL, TS))


PROVIDER: Final = Provider(
    name=NAME,
    description="FRED economic series (St. Louis Fed) as close-only daily bars; needs FRED_API_KEY",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=BarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=6 * 3600,
            max_symbols=1,
            intervals=("1d",),
        )
    },
    credentials=(CREDENTIAL,),
    network=True,
    calendar=None,
)
