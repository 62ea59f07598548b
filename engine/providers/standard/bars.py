"""Standard `bars` dataset: the query every provider accepts and the frame it returns.

The returned frame is the canonical bar frame (engine.schema): `symbol, ts, open, high,
low, close, volume` (+ optional `adj_close`), UTC timestamps. A provider that knows the
true regime of each bar (the synthetic one) adds an int `regime` column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Final, Literal, get_args

import msgspec
import polars as pl

__all__ = ["INTERVALS", "BarsQuery", "Interval", "to_utc_datetime"]

Interval = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1wk", "1mo"]
INTERVALS: Final[tuple[str, ...]] = get_args(Interval)


def to_utc_datetime(value: date | datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime (dates at 00:00 UTC; naive datetimes taken as UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time.min, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class BarsQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Bars for `symbols` between `start` and `end` (inclusive, UTC) at `interval`."""

    symbols: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    interval: Interval = "1d"

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("at least one symbol is required")
        if any(not s or s != s.strip() for s in self.symbols):
            raise ValueError(f"symbols must be non-empty without spaces: {list(self.symbols)}")
        if self.interval not in INTERVALS:
            raise ValueError(f"unknown interval {self.interval!r}; one of {', '.join(INTERVALS)}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware (UTC)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start:%Y-%m-%d} is after end {self.end:%Y-%m-%d}")

    def in_range(self) -> pl.Expr:
        """True for bars (column `ts`) within [start, end]: the filter every transform applies."""
        bounds = [pl.lit(value=True)]
        if self.start is not None:
            bounds.append(pl.col("ts") >= self.start)
        if self.end is not None:
            bounds.append(pl.col("ts") <= self.end)
        return pl.all_horizontal(bounds)

    def with_symbols(self, symbols: tuple[str, ...], start: datetime | None = None) -> BarsQuery:
        """The same query for other symbols (and optionally a later start)."""
        return msgspec.structs.replace(
            self, symbols=symbols, start=to_utc_datetime(start) or self.start
        )
