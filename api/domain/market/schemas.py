"""Request and response types of the market routes: instruments, bars and features."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

from engine.providers.standard.bars import Interval

__all__ = [
    "BAR_MEDIA_TYPES",
    "CODE_PATTERN",
    "SYMBOL_PATTERN",
    "TIME_PATTERN",
    "Bar",
    "BarCoverage",
    "BarFormat",
    "BarSeries",
    "FeatureSeries",
    "Instrument",
    "InstrumentCreate",
]

# A symbol as providers spell them (^GSPC, BRK-B, EURUSD=X, BTCUSDT): no spaces, controls or '/'.
SYMBOL_PATTERN: Final = r"^[^\s\x00-\x1f\x7f/]{1,64}$"
# A date or an ISO 8601 datetime, optionally with a UTC offset (parsed by `parse_time`).
TIME_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
# Free text: Postgres text never holds NUL, and names need no control characters.
_TEXT_PATTERN: Final = r"^[^\x00-\x1f\x7f]*$"
# Providers, asset classes, exchanges, calendars, currencies.
CODE_PATTERN: Final = r"^[A-Za-z0-9_./:+-]+$"

BarFormat = Literal["json", "csv", "parquet", "arrow"]
BAR_MEDIA_TYPES: Final[dict[BarFormat, str]] = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.file",
}

Symbol = Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN, examples=["SPX"])]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_TEXT_PATTERN)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=CODE_PATTERN)]


class BarCoverage(msgspec.Struct, kw_only=True):
    """Stored bars of one interval: how many and the range they span."""

    interval: str
    bars: int
    first: datetime
    last: datetime


class Instrument(msgspec.Struct, kw_only=True):
    """A stored instrument, its description and the bars stored for it."""

    symbol: str
    name: str | None
    asset_class: str
    exchange: str | None
    currency: str
    calendar: str | None
    provider: str
    is_active: bool
    coverage: list[BarCoverage]


class InstrumentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An instrument to describe before its first load (the provider it is loaded from)."""

    symbol: Symbol
    provider: Code
    name: Text | None = None
    asset_class: Code = "equity"
    exchange: Code | None = None
    currency: Code = "USD"
    calendar: Code | None = None
    """Exchange calendar (exchange-calendars name, e.g. XNYS) its daily bars follow."""


class Bar(msgspec.Struct, kw_only=True):
    """One OHLCV bar (UTC timestamp of its start)."""

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    adj_close: float | None = None


class BarSeries(msgspec.Struct, kw_only=True):
    """Bars of one symbol and interval, oldest first."""

    symbol: str
    interval: Interval
    bars: list[Bar]


class FeatureSeries(msgspec.Struct, kw_only=True):
    """Features of one symbol, column by column: `values[name][i]` belongs to `ts[i]`.

    Values are null during a feature's warm-up (and where it is undefined).
    """

    symbol: str
    interval: Interval
    features: list[str]
    ts: list[datetime]
    values: dict[str, list[float | None]]
