"""Reads alert evaluation needs that the other io modules do not offer: a warm-up start
per set of symbols, filtered labels from a start time, and a history of stored signals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl
import psycopg

from engine.schema import SYMBOL, TS

__all__ = ["load_label_window", "load_signal_history", "warmup_start"]

_LABEL_SCHEMA: Final = {
    SYMBOL: pl.String(),
    TS: pl.Datetime("us", "UTC"),
    "regime": pl.Int32(),
    "probs": pl.List(pl.Float64()),
}
_SIGNAL_SCHEMA: Final = {
    "strategy": pl.String(),
    SYMBOL: pl.String(),
    TS: pl.Datetime("us", "UTC"),
    "target": pl.Float64(),
}


def warmup_start(
    conn: psycopg.Connection,
    symbols: Sequence[str],
    *,
    bars: int,
    before: datetime | None = None,
    interval: str = "1d",
) -> datetime | None:
    """The earliest, over `symbols`, of each one's `bars`-th newest stored bar before
    `before` (newest overall when None), or its first bar if it has fewer: loading from
    there gives every symbol `bars` bars of history. None if no symbol has bars."""
    row = conn.execute(
        "SELECT min(coalesce("
        " (SELECT b.ts FROM bars b WHERE b.instrument_id = i.id AND b.interval = %(interval)s"
        "  AND (%(before)s::timestamptz IS NULL OR b.ts < %(before)s::timestamptz)"
        "  ORDER BY b.ts DESC OFFSET %(offset)s LIMIT 1),"
        " (SELECT min(b.ts) FROM bars b WHERE b.instrument_id = i.id"
        "  AND b.interval = %(interval)s))) "
        "FROM instruments i WHERE i.symbol = ANY(%(symbols)s)",
        {
            "interval": interval,
            "before": before,
            "offset": max(bars - 1, 0),
            "symbols": list(symbols),
        },
    ).fetchone()
    return row[0] if row else None


def load_label_window(
    conn: psycopg.Connection,
    model: str,
    symbols: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Filtered labels symbol, ts, regime, probs of the newest succeeded run of `model`
    per symbol, with ts in [start, end], sorted by symbol and ts."""
    rows = conn.execute(
        "WITH runs AS ("
        " SELECT DISTINCT ON (i.id) i.id AS instrument_id, i.symbol, r.id AS run_id "
        " FROM instruments i JOIN regime_runs r ON i.symbol = ANY(r.symbols) "
        " WHERE r.model = %(model)s AND r.status = 'succeeded' AND i.symbol = ANY(%(symbols)s)"
        " ORDER BY i.id, r.id DESC) "
        "SELECT s.symbol, l.ts, l.regime, l.probs FROM runs s "
        "JOIN regime_labels l ON l.run_id = s.run_id AND l.instrument_id = s.instrument_id "
        "WHERE l.kind = 'filtered' "
        "AND (%(start)s::timestamptz IS NULL OR l.ts >= %(start)s::timestamptz) "
        "AND (%(end)s::timestamptz IS NULL OR l.ts <= %(end)s::timestamptz) "
        "ORDER BY s.symbol, l.ts",
        {"model": model, "symbols": list(symbols), "start": start, "end": end},
    ).fetchall()
    return pl.DataFrame(rows, schema=_LABEL_SCHEMA, orient="row")


def load_signal_history(
    conn: psycopg.Connection,
    strategies: Sequence[str],
    symbols: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Stored signals strategy, symbol, ts, target of the saved `strategies` on `symbols`
    with ts in [start, end], sorted by strategy, symbol and ts."""
    rows = conn.execute(
        "SELECT st.name, i.symbol, s.ts, s.target FROM signals s "
        "JOIN strategies st ON st.id = s.strategy_id "
        "JOIN instruments i ON i.id = s.instrument_id "
        "WHERE st.name = ANY(%(strategies)s) AND i.symbol = ANY(%(symbols)s) "
        "AND (%(start)s::timestamptz IS NULL OR s.ts >= %(start)s::timestamptz) "
        "AND (%(end)s::timestamptz IS NULL OR s.ts <= %(end)s::timestamptz) "
        "ORDER BY st.name, i.symbol, s.ts",
        {"strategies": list(strategies), "symbols": list(symbols), "start": start, "end": end},
    ).fetchall()
    return pl.DataFrame(rows, schema=_SIGNAL_SCHEMA, orient="row")
