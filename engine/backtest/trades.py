"""Round trips of simulated backtests: one row per trade, per parameter set and symbol.

A trade is a maximal run of consecutive bars whose held weight (`weight:{key}` at the
close) is nonzero with one sign. It is entered at the run's first bar (the order filled
there) and exited at the bar after the run (weight back to 0, or flipped), or is still
open at the symbol's last bar.

Return and pnl compare the account's equity around the trade:

- before the entry order: from flat, the previous bar's close equity (a flat account's
  equity does not move between the close and the next order, for close and open
  execution alike), or `init_cash` when the position is already held at the first bar;
- after the exit order: the exit bar's close equity, which already paid the exit fees
  (the account is flat from the exit order to the close); an open trade is marked at the
  last close, without exit costs (as vectorbt marks open trades);
- at a flip (long to short or back in one order) the bar's costs are split between the
  two legs by traded value: the closing trade ends, and the new one starts, at the
  equity between the two legs, E + fees * |w| E / (turnover * (E + fees)) with E, w the
  bar's close equity and weight. That is exact for close execution without slippage;
  otherwise the new leg's slippage (and, for open execution, its open-to-close move on
  the flip bar) stays with the closing trade.

return = equity after / equity before - 1 and pnl = equity after - equity before, so
the pnl of a symbol's trades plus its flat periods add up to its equity change. For an
all-in long-only strategy (vectorbt's `from_signals`) the equity before the entry is the
cash that bought the position including its fee, and the equity after the exit is the
sale's proceeds net of the exit fee, so pnl equals vectorbt's trade pnl exactly and
return = pnl / (entry value + entry fee). vectorbt 1.2 reports pnl / entry value (fees
excluded from the denominator), which is this return times (1 + fee rate). For a
position of weight w the return is the account's, about w times the position's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from engine.backtest.execution import column
from engine.schema import REGIME, SYMBOL, TS

__all__ = ["KEY", "TRADE_COLUMNS", "trade_table"]

KEY: Final = "key"
TRADE_COLUMNS: Final = (
    KEY,
    SYMBOL,
    "entry_ts",
    "exit_ts",
    "bars",
    "direction",
    "return",
    "pnl",
    "is_open",
)
"""Columns of `trade_table`; `entry_regime` follows when the frame has a regime column."""

_INDEX: Final = "_index"
_FIRST: Final = "_first"
_LAST: Final = "_last"
_TRADE: Final = "_trade"


def _position_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    """`lf` with each bar's position in the frame and its symbol's first/last bar flags."""
    symbol = pl.col(SYMBOL)
    return lf.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_INDEX),
        (symbol != symbol.shift(1)).fill_null(value=True).alias(_FIRST),
        (symbol != symbol.shift(-1)).fill_null(value=True).alias(_LAST),
    )


def _events(lf: pl.LazyFrame, key: str, init_cash: float | None, regime: bool) -> pl.LazyFrame:
    """The bars where a trade of `key` starts or ends, with the equity around them.

    Only the side of the position (and the previous equity) is computed on every bar; the
    rest on the few bars where the side changes, or a symbol ends in a position."""
    names = lf.collect_schema().names()
    first = pl.col(_FIRST)
    weight = pl.col(column("weight", key))
    side = weight.fill_null(0.0).fill_nan(0.0).sign().cast(pl.Int8)
    changed = lf.select(
        SYMBOL,
        TS,
        _INDEX,
        _FIRST,
        _LAST,
        *([REGIME] if regime else []),
        side.alias("direction"),
        pl.when(first).then(0).otherwise(side.shift(1)).cast(pl.Int8).alias("_side_before"),
        pl.col(column("equity", key)).alias("_equity"),
        pl.col(column("equity", key)).shift(1).alias("_previous"),
        weight.alias("_weight"),
        *(_optional(names, kind, key).alias(f"_{kind}") for kind in ("fees", "turnover")),
    ).filter(
        (pl.col("direction") != pl.col("_side_before"))
        | (pl.col(_LAST) & (pl.col("direction") != 0))
    )

    direction, before = pl.col("direction"), pl.col("_side_before")
    entry = (direction != 0) & (direction != before)
    equity = pl.col("_equity")
    fees, turnover = pl.col("_fees").fill_null(0.0), pl.col("_turnover").fill_null(0.0)
    # the equity between the closing and the opening leg of a flip
    new_leg = fees * pl.col("_weight").abs() * equity / (turnover * (equity + fees))
    between = equity + pl.when(turnover > 0.0).then(new_leg).otherwise(0.0)
    start_cash = equity + fees if init_cash is None else pl.lit(init_cash, pl.Float64)
    previous = pl.when(pl.col(_FIRST)).then(start_cash).otherwise(pl.col("_previous"))
    return changed.select(
        SYMBOL,
        TS,
        _INDEX,
        *([REGIME] if regime else []),
        "direction",
        entry.alias("_entry"),
        ((before != 0) & (direction != before)).alias("_exit"),
        (pl.col(_LAST) & (direction != 0)).alias("_open"),
        # the trade a bar belongs to: 1, 2, ... across the frame, so unique per key
        entry.cast(pl.Int64).cum_sum().alias(_TRADE),
        pl.when(before == 0).then(previous).otherwise(between).alias("_before"),
        pl.when(direction == 0).then(equity).otherwise(between).alias("_after"),
    )


def _optional(names: Sequence[str], kind: str, key: str) -> pl.Expr:
    """The `kind` column of `key` (a column of nulls if the frame lacks it)."""
    name = column(kind, key)
    return pl.col(name) if name in names else pl.lit(None, pl.Float64)


def _key_trades(events: pl.LazyFrame, key: str, regime: bool) -> pl.LazyFrame:
    """One row per trade of `key` from its entry and exit events."""
    entries = events.filter("_entry").select(
        pl.col(_TRADE),
        SYMBOL,
        pl.col(TS).alias("entry_ts"),
        pl.col(_INDEX).alias("_entry_index"),
        "direction",
        "_before",
        *([pl.col(REGIME).alias("entry_regime")] if regime else []),
    )
    closed = events.filter("_exit").select(
        # a bar that exits a trade and enters the next belongs to the new one
        (pl.col(_TRADE) - pl.col("_entry").cast(pl.Int64)).alias(_TRADE),
        pl.col(TS).alias("exit_ts"),
        pl.col(_INDEX).alias("_exit_index"),
        "_after",
        pl.lit(value=False).alias("is_open"),
    )
    still_open = events.filter("_open").select(
        _TRADE,
        pl.when(pl.lit(value=False)).then(pl.col(TS)).alias("exit_ts"),
        (pl.col(_INDEX) + 1).alias("_exit_index"),
        "_after",
        pl.lit(value=True).alias("is_open"),
    )
    ends = pl.concat([closed, still_open])
    return entries.join(ends, on=_TRADE, how="left", maintain_order="left").select(
        pl.lit(key).alias(KEY),
        SYMBOL,
        "entry_ts",
        "exit_ts",
        (pl.col("_exit_index") - pl.col("_entry_index")).alias("bars"),
        "direction",
        (pl.col("_after") / pl.col("_before") - 1.0).alias("return"),
        (pl.col("_after") - pl.col("_before")).alias("pnl"),
        "is_open",
        *(["entry_regime"] if regime else []),
    )


def trade_table(
    frame: pl.DataFrame | pl.LazyFrame, keys: Sequence[str], *, init_cash: float | None = None
) -> pl.DataFrame:
    """Round trips per (key, symbol), in key, symbol and entry order: `TRADE_COLUMNS`
    (+ entry_regime when `frame` has a regime column).

    `frame`: symbol, ts and, per key, `equity:{key}` and `weight:{key}` (`fees:{key}` and
    `turnover:{key}` split the costs of a flip), sorted by (symbol, ts). bars: bars the
    position is held at a close (exit bar - entry bar for a closed trade). direction: 1
    long, -1 short. exit_ts is null while the trade is open. `init_cash` is the equity
    before a position held from the first bar (default: the first bar's equity plus its
    fees).
    """
    if not keys:
        raise ValueError("trade_table needs at least one key")
    names = frame.lazy().collect_schema().names()
    needed = [SYMBOL, TS, *(column(kind, k) for k in keys for kind in ("equity", "weight"))]
    missing = [c for c in needed if c not in names]
    if missing:
        raise ValueError(f"trade frame lacks column(s): {', '.join(missing)}")
    lf = _position_columns(frame.lazy())
    regime = REGIME in names
    # the bars where positions change, per key (in parallel), then trades from those
    events = pl.collect_all(
        [_events(lf, key, init_cash, regime) for key in keys], engine="in-memory"
    )
    trades = [_key_trades(e.lazy(), key, regime) for e, key in zip(events, keys, strict=True)]
    return pl.concat(trades).collect(engine="in-memory")
