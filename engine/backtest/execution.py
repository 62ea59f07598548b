"""Vectorized order execution: target weights in, equity curves out, in closed form.

Between two orders a position holds its shares and cash stays put, so equity over a
holding segment is linear in the price: E_t = E+ (1 + w (m_t / x - 1)), with w the weight
right after the order, x the order's reference price and m_t the mark (close). At an
order the state is fully described, relative to the equity just before it (E-), by the
drifted weight d of the previous segment; the order to target weight w then costs

    rho = E+ / E- = (1 + k d) / (1 + k w)   (buy, w > d, k = (1 + s)(1 + f) - 1)
    rho = (1 - k d) / (1 - k w)             (sell, w < d, k = 1 - (1 - s)(1 - f))

for fee rate f (a fraction of the order's value, paid from cash: vectorbt's convention,
so an all-in buy from cash gets size = cash / (price (1 + f))) and slippage s. Every
quantity is a ratio to equity, so a whole curve is a cumulative product of per-order
factors: a handful of column expressions per parameter set, no per-bar Python and no
loop. A shared-cash portfolio solves the same balance across assets at each rebalance
(`simulate_portfolio`, a short fixed-point iteration per rebalance).

Frames are long, sorted by (symbol, ts), with the engine's `_row` (bar number within its
symbol) column. Targets are decided at bar t's close and execute at bar t+1: at its
close, or at its open with `Execution(price="open")`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from engine.backtest.spec import Execution
from engine.schema import CLOSE, OPEN, SYMBOL, TS

__all__ = [
    "EXECUTION_COLUMNS",
    "ROW",
    "column",
    "rebalance_flags",
    "simulate",
    "simulate_portfolio",
]

ROW: Final = "_row"
RUN: Final = "_run"
REBALANCE: Final = "_rebalance"
EXECUTION_COLUMNS: Final = ("equity", "weight", "fees", "turnover", "trade")
"""Per parameter set: equity at the close, the weight held at the close, fees paid at
the bar, turnover at the bar (traded value / equity), and whether an order filled."""


def column(kind: str, key: str) -> str:
    """Name of the `kind` column ("target", "equity", ...) of parameter set `key`."""
    return f"{kind}:{key}"


def _first() -> pl.Expr:
    return pl.col(ROW) == 0


def _cost_rates(execution: Execution) -> tuple[float, float]:
    """(buy, sell) cost per unit of traded value, fee and slippage together."""
    f, s = execution.fee, execution.slippage
    return (1 + s) * (1 + f) - 1, 1 - (1 - s) * (1 - f)


def _period(execution: Execution) -> pl.Expr | None:
    """The calendar period whose first bar rebalances (None for on_change)."""
    every = {"daily": "1d", "weekly": "1w", "monthly": "1mo"}.get(execution.rebalance)
    return None if every is None else pl.col(TS).dt.truncate(every)


def rebalance_flags(execution: Execution) -> pl.Expr:
    """True on the bars where positions go back to target weights even if the target did
    not change (first bar of each day/week/month), per symbol; never for on_change."""
    period = _period(execution)
    if period is None:
        return pl.lit(value=False)
    return _first() | (period != period.shift(1))


def simulate(lf: pl.LazyFrame, keys: Sequence[str], execution: Execution) -> pl.LazyFrame:
    """Add the `EXECUTION_COLUMNS` of each key to `lf`, each symbol its own account.

    `lf` holds symbol, ts, close (and open for open execution), `_row`, and one
    `target:{key}` column per key (null = flat). Equity starts at `execution.init_cash`.

    Collects `lf` once: each key's order arithmetic then runs on its order rows only (one
    per holding segment, a few per cent of the bars, `_order_values`), and every bar
    gathers its segment's values back by index. The per-bar outputs stay lazy.
    """
    first = _first()
    scheduled = execution.rebalance != "on_change"

    def c(kind: str, key: str) -> pl.Expr:
        return pl.col(column(kind, key))

    def starts(k: str) -> pl.Expr:
        """Orders: the target changed, or a scheduled rebalance of an open position."""
        w = c("_w", k)
        changed = first | (w != w.shift(1))
        return changed | (pl.col(REBALANCE) & (w != 0.0)) if scheduled else changed

    if scheduled:
        lf = lf.with_columns(rebalance_flags(execution).alias(REBALANCE))
    frame = (
        # the weight each bar executes: the previous bar's target (null or NaN: flat)
        lf.with_columns(
            pl.when(first)
            .then(0.0)
            .otherwise(c("target", k).cast(pl.Float64).shift(1))
            .fill_nan(0.0)
            .fill_null(0.0)
            .alias(column("_w", k))
            for k in keys
        )
        .with_columns(starts(k).alias(column("_start", k)) for k in keys)
        # each bar's holding segment: the number of the key's order that opened it
        .with_columns((c("_start", k).cum_sum() - 1).alias(column("_seg", k)) for k in keys)
        .collect()
    )
    x = pl.col(OPEN if execution.price == "open" else CLOSE)
    order_rows = (
        frame.lazy().select(
            e.filter(c("_start", k)).alias(name)
            for e, name in ((c("_w", k), "w"), (x, "x"), (first, "first"))
        )
        for k in keys
    )
    # rechunked: gathering from a Series in many chunks is several times slower
    orders = [o.rechunk() for o in pl.collect_all(_order_values(r, execution) for r in order_rows)]

    def gathered(k: str, values: pl.DataFrame, name: str) -> pl.Expr:
        """Each bar's value of its holding segment's order."""
        return pl.lit(values[name]).gather(c("_seg", k))

    def outputs(k: str, values: pl.DataFrame) -> list[pl.Expr]:
        w, seg_x = c("_w", k), c("_x", k)
        ratio = pl.when(w == 0.0).then(1.0).otherwise(pl.col(CLOSE) / seg_x)
        growth = 1.0 + w * (ratio - 1.0)
        return [
            (gathered(k, values, "after") * growth).alias(column("equity", k)),
            pl.when(growth == 0.0)
            .then(0.0)
            .otherwise(w * ratio / growth)
            .alias(column("weight", k)),
            pl.when(c("_start", k))
            .then(gathered(k, values, "fees"))
            .otherwise(0.0)
            .alias(column("fees", k)),
            (c("turnover", k) > 0.0).alias(column("trade", k)),
        ]

    per_key = list(zip(keys, orders, strict=True))
    scratch = [column(p, k) for k in keys for p in ("_w", "_start", "_seg", "_x")]
    return (
        frame.lazy()
        # x is a column of its own: Polars' common-subexpression pass skips expressions
        # holding a Series, and the ratio to it is used twice
        .with_columns(gathered(k, values, "x").alias(column("_x", k)) for k, values in per_key)
        .with_columns(
            pl.when(c("_start", k))
            .then(gathered(k, values, "turnover"))
            .otherwise(0.0)
            .alias(column("turnover", k))
            for k, values in per_key
        )
        .with_columns(e for k, values in per_key for e in outputs(k, values))
        .pipe(_liquidated, keys, first)
        .drop([*scratch, *([REBALANCE] if scheduled else [])])
    )


def _liquidated(lf: pl.LazyFrame, keys: Sequence[str], first: pl.Expr) -> pl.LazyFrame:
    """An account whose equity reaches zero (or below) at a close is liquidated: from that
    bar on it holds nothing, trades nothing and is worth 0 (a leveraged short through a
    spike would otherwise go negative between orders and come back)."""
    account = first.cum_sum()
    bust = {k: (pl.col(column("equity", k)) <= 0.0).cum_max().over(account) for k in keys}
    lf = lf.with_columns(bust[k].alias(column("_bust", k)) for k in keys)
    zeroed = [
        pl.when(pl.col(column("_bust", k)))
        .then(0.0)
        .otherwise(column(kind, k))
        .alias(column(kind, k))
        for k in keys
        for kind in ("equity", "weight", "fees", "turnover")
    ]
    return (
        lf.with_columns(zeroed)
        .with_columns(
            (pl.col(column("trade", k)) & ~pl.col(column("_bust", k))).alias(column("trade", k))
            for k in keys
        )
        .drop(column("_bust", k) for k in keys)
    )


def _order_values(rows: pl.LazyFrame, execution: Execution) -> pl.LazyFrame:
    """Reference price x, equity right after the order (E+), turnover and fees of each
    order, from its rows' executed weight `w`, reference price `x` and first-bar flag
    `first`, in bar order: the row before an order is the previous segment's order."""
    buy, sell = _cost_rates(execution)
    f, s = execution.fee, execution.slippage
    w, x, first = pl.col("w"), pl.col("x"), pl.col("first")
    held, moved, growth, drift, rho, log = (
        pl.col(name) for name in ("_held", "_moved", "_growth", "_drift", "_rho", "_log")
    )
    bust = growth <= 0.0
    buying = w > drift
    return (
        rows.with_columns(
            pl.when(first).then(0.0).otherwise(w.shift(1)).alias("_held"),  # previous weight
            pl.when(first).then(1.0).otherwise(x / x.shift(1)).alias("_moved"),
        )
        .with_columns((1.0 + held * (moved - 1.0)).alias("_growth"))  # E- / previous E+
        .with_columns(pl.when(bust).then(0.0).otherwise(held * moved / growth).alias("_drift"))
        .with_columns(
            pl.when(buying)
            .then((1.0 + buy * drift) / (1.0 + buy * w))
            .otherwise((1.0 - sell * drift) / (1.0 - sell * w))
            .alias("_rho")
        )
        .with_columns(
            (w * rho - drift).abs().alias("turnover"),
            # per symbol: one account's bust (log 0 = -inf) must not touch the next one's
            pl.when(bust)
            .then(float("-inf"))
            .otherwise((growth * rho).log())
            .cum_sum()
            .over(first.cum_sum())
            .alias("_log"),
        )
        .with_columns(
            # E+: init_cash times the product of the symbol's factors so far
            (log.exp() * execution.init_cash).alias("after")
        )
        .select(
            "x",
            "after",
            "turnover",
            (
                pl.col("after")
                / rho
                * (f * pl.col("turnover") * pl.when(buying).then(1.0 + s).otherwise(1.0 - s))
            ).alias("fees"),
        )
    )


def simulate_portfolio(
    frame: pl.DataFrame, target: str, execution: Execution, *, iterations: int = 8
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One shared-cash account over all symbols of `frame` for the target column `target`.

    `frame`: symbol, ts, close (open), target, sorted by (symbol, ts). Symbols are aligned
    on the union of their timestamps (a missing bar carries the last close; before its
    first bar a symbol's weight is 0). Returns (portfolio, positions): portfolio has ts,
    equity, fees, turnover, trade, exposure (gross weight); positions has symbol, ts,
    weight (held at the close).
    """
    buy, sell = _cost_rates(execution)
    f, s = execution.fee, execution.slippage
    price = OPEN if execution.price == "open" else CLOSE
    symbols = frame.select(pl.col(SYMBOL).unique(maintain_order=True))
    times = frame.select(pl.col(TS).unique().sort())
    inputs = list(dict.fromkeys([SYMBOL, TS, price, CLOSE, target]))
    dense = (
        symbols.join(times, how="cross")
        .join(frame.select(inputs), on=[SYMBOL, TS], how="left")
        .sort(SYMBOL, TS)
        .with_columns(
            # the last known price carries over a missing bar; null before the first bar
            pl.col(CLOSE).forward_fill().over(SYMBOL),
            pl.coalesce(price, CLOSE).forward_fill().over(SYMBOL).alias("_x"),
            pl.col(target)
            .cast(pl.Float64)
            .shift(1)
            .over(SYMBOL)
            .fill_nan(0.0)
            .fill_null(0.0)
            .alias("_w"),
        )
        .with_columns(pl.when(pl.col(CLOSE).is_null()).then(0.0).otherwise("_w").alias("_w"))
    )
    changed = pl.col("_w") != pl.col("_w").shift(1).over(SYMBOL).fill_null(0.0)
    per_ts = (
        dense.with_columns(changed.alias("_changed"))
        .group_by(TS)
        .agg(pl.col("_changed").any(), (pl.col("_w") != 0).any().alias("_open"))
        .sort(TS)
        .with_columns(rebalance_flags_ts(execution).alias("_sched"))
        .with_columns(
            (
                (pl.int_range(pl.len()) == 0)
                | pl.col("_changed")
                | (pl.col("_sched") & pl.col("_open"))
            ).alias("_start")
        )
        .select(TS, "_start")
    )
    dense = dense.join(per_ts, on=TS).sort(SYMBOL, TS)
    dense = dense.with_columns(
        pl.when("_start").then(pl.col("_x")).forward_fill().over(SYMBOL).alias("_sx"),
        pl.when("_start").then(pl.col("_w")).forward_fill().over(SYMBOL).alias("_weff"),
    )
    prev_w = pl.col("_weff").shift(1).over(SYMBOL).fill_null(0.0)
    moved = (pl.col("_x") / pl.col("_sx").shift(1).over(SYMBOL)).fill_null(1.0)
    orders = (
        dense.with_columns(
            (prev_w * (moved - 1.0)).fill_nan(0.0).alias("_gain"),
            (prev_w * moved).fill_nan(0.0).alias("_held"),
        )
        .filter("_start")
        .sort(TS, SYMBOL)
        .with_columns((1.0 + pl.col("_gain").sum().over(TS)).alias("_growth"))
        .with_columns(
            pl.when(pl.col("_growth") <= 0)
            .then(0.0)
            .otherwise(pl.col("_held") / pl.col("_growth"))
            .alias("_d")
        )
    )
    w, d = pl.col("_w"), pl.col("_d")
    orders = orders.with_columns(pl.lit(1.0).alias("_rho"))
    for _ in range(iterations):  # contraction with factor ~ cost x gross weight: converges fast
        gap = w * pl.col("_rho") - d
        cost = pl.when(gap > 0).then(buy * gap).otherwise(-sell * gap)
        orders = orders.with_columns((1.0 - cost.sum().over(TS)).alias("_rho"))
    gap = w * pl.col("_rho") - d
    orders = orders.with_columns(
        gap.abs().alias("_traded"),
        (f * gap.abs() * pl.when(gap > 0).then(1.0 + s).otherwise(1.0 - s)).alias("_fee"),
    )
    per_order = (
        orders.group_by(TS, maintain_order=True)
        .agg(
            pl.col("_growth").first(),
            pl.col("_rho").first(),
            pl.col("_traded").sum().alias("turnover"),
            pl.col("_fee").sum().alias("_fee"),
            (pl.col("_traded") > 0).sum().alias("trade"),
        )
        .with_columns(
            pl.when(pl.col("_growth") <= 0)
            .then(float("-inf"))
            .otherwise((pl.col("_growth") * pl.col("_rho")).log())
            .cum_sum()
            .exp()
            .mul(execution.init_cash)
            .alias("_after")
        )
    )
    ratio = pl.when(pl.col("_weff") == 0).then(1.0).otherwise(pl.col(CLOSE) / pl.col("_sx"))
    positions = dense.with_columns(
        (pl.col("_weff") * (ratio - 1.0)).fill_null(0.0).alias("_gain"),
        (pl.col("_weff") * ratio).fill_null(0.0).alias("_value"),
    )
    marks = positions.group_by(TS).agg(
        (1.0 + pl.col("_gain").sum()).alias("_growth_now"),
        pl.col("_value").abs().sum().alias("_gross_value"),
    )
    portfolio = (
        times.join(
            per_order.select(TS, "_after", "_rho", "_fee", "turnover", "trade"), on=TS, how="left"
        )
        .join(marks, on=TS)
        .sort(TS)
        .with_columns(
            pl.col("_after").forward_fill(),
            pl.col("turnover").fill_null(0.0),
            pl.col("trade").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            (pl.col("_after") * pl.col("_growth_now")).alias("equity"),
            (pl.col("_after") / pl.col("_rho") * pl.col("_fee")).fill_null(0.0).alias("fees"),
            (pl.col("_gross_value") / pl.col("_growth_now")).alias("exposure"),
        )
        .select(TS, "equity", "fees", "turnover", "trade", "exposure")
    )
    held = positions.join(marks, on=TS).select(
        SYMBOL, TS, (pl.col("_value") / pl.col("_growth_now")).alias("weight")
    )
    return portfolio, held


def rebalance_flags_ts(execution: Execution) -> pl.Expr:
    """`rebalance_flags` for a frame of unique, sorted timestamps."""
    period = _period(execution)
    if period is None:
        return pl.lit(value=False)
    return (period != period.shift(1)).fill_null(value=True)
