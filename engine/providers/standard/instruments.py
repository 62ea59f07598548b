"""Standard `instruments` dataset: what a provider knows about its symbols (and search).

The returned frame has one row per instrument: `symbol, name, asset_class, exchange,
currency` (strings; name/exchange may be null). Ingest uses it to describe the instruments
it creates; `regimelab instruments --provider P --search TEXT` searches with it.
"""

from __future__ import annotations

from typing import Final

import msgspec
import polars as pl

__all__ = ["INSTRUMENT_SCHEMA", "InstrumentsQuery", "select_listed", "validate_instruments"]

INSTRUMENT_SCHEMA: Final = pl.Schema(
    {
        "symbol": pl.String(),
        "name": pl.String(),
        "asset_class": pl.String(),
        "exchange": pl.String(),
        "currency": pl.String(),
    }
)


class InstrumentsQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Instruments by `symbols`, or those matching the free text `search` (case-insensitive)."""

    symbols: tuple[str, ...] = ()
    search: str | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if not self.symbols and not (self.search and self.search.strip()):
            raise ValueError("give symbols or a search text")
        if not 0 < self.limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")

    def select(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of a provider's instrument list that this query asks for."""
        if self.symbols:
            frame = frame.filter(pl.col("symbol").is_in(self.symbols))
        if self.search:
            text = self.search.strip().lower()
            frame = frame.filter(
                pl.col("symbol").str.to_lowercase().str.contains(text, literal=True)
                | pl.col("name").fill_null("").str.to_lowercase().str.contains(text, literal=True)
            )
        return frame.head(self.limit)


def validate_instruments(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the canonical instrument columns and types; ValueError if it can't be."""
    missing = [c for c in INSTRUMENT_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"instrument frame lacks column(s): {', '.join(missing)}")
    return frame.select(pl.col(c).cast(t) for c, t in INSTRUMENT_SCHEMA.items())


def select_listed(query: InstrumentsQuery, raw: object) -> pl.DataFrame:
    """The transform of a provider whose extract returns its whole instrument list as a frame."""
    if not isinstance(raw, pl.DataFrame):
        raise TypeError(f"expected an instrument frame, got {type(raw).__name__}")
    return validate_instruments(query.select(raw))
