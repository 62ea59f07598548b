"""Chart- and table-ready shapes of backtest results, for notebooks and reports.

Equity curves come in two units (a single run's benchmark is growth of 1, a walk-forward's
is cash); `growth_curves` puts strategy and benchmark on one scale, growth of 1 from each
symbol's first bar, so they can share an axis. Drawdowns and sweep surfaces follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import polars as pl

from engine.backtest.spec import BacktestSpec
from engine.backtest.walkforward import WalkForwardSpec
from engine.schema import SYMBOL, TS

__all__ = [
    "backtest_payload",
    "best_params",
    "drawdown_frame",
    "growth_curves",
    "strategy_payload",
    "sweep_surface",
]

STRATEGY = "strategy"
BENCHMARK = "benchmark"


def growth_curves(equity: pl.DataFrame, *, label: str = STRATEGY) -> pl.DataFrame:
    """Strategy and benchmark as growth of 1 from each symbol's first bar, long form:
    symbol, ts, series (`label` | "benchmark"), growth. `equity` has symbol, ts, equity
    and benchmark (one parameter set: a single run's or a walk-forward's curve)."""
    ordered = equity.sort(SYMBOL, TS)
    first = pl.col(TS).rank("ordinal").over(SYMBOL) == 1
    wide = ordered.select(
        SYMBOL,
        TS,
        (pl.col("equity") / pl.col("equity").filter(first).first().over(SYMBOL)).alias(label),
        (pl.col(BENCHMARK) / pl.col(BENCHMARK).filter(first).first().over(SYMBOL)).alias(BENCHMARK),
    )
    return wide.unpivot(
        index=[SYMBOL, TS], on=[label, BENCHMARK], variable_name="series", value_name="growth"
    ).sort(SYMBOL, "series", TS)


def drawdown_frame(curves: pl.DataFrame) -> pl.DataFrame:
    """Drawdown below the running peak (0 at a peak, -0.2 = 20% below) of each curve of
    `growth_curves`: symbol, ts, series, drawdown."""
    growth = pl.col("growth")
    return curves.select(
        SYMBOL,
        TS,
        "series",
        (growth / growth.cum_max().over(SYMBOL, "series") - 1.0).alias("drawdown"),
    )


def sweep_surface(metrics: pl.DataFrame, x: str, y: str, metric: str) -> pl.DataFrame:
    """`metric` over the grid of parameters `x` and `y`, averaged across symbols (and any
    other grid parameters): x, y, metric. `metrics` is a sweep's metrics frame."""
    return (
        metrics.group_by(x, y)
        .agg(pl.col(metric).mean())
        .with_columns(pl.col(x).cast(pl.String), pl.col(y).cast(pl.String))
        .sort(x, y)
    )


def best_params(
    metrics: pl.DataFrame, grid: Sequence[str], metric: str = "sharpe"
) -> dict[str, Any]:
    """The grid values whose `metric` averaged across symbols is highest ({} without a
    grid or any finite score)."""
    if not grid:
        return {}
    scores = (
        metrics.group_by(*grid)
        .agg(pl.col(metric).mean().alias("score"))
        .filter(pl.col("score").is_finite())
        .sort("score", descending=True)
    )
    if scores.is_empty():
        return {}
    row = scores.row(0, named=True)
    return {name: row[name] for name in grid}


def strategy_payload(name: str, spec: BacktestSpec) -> dict[str, Any]:
    """The body of `POST /api/v1/strategies` saving `spec`'s single parameter set as
    strategy `name` (the scheduler then computes its signals after each watchlist ingest).
    A grid is dropped: a saved strategy runs one parameter set."""
    body = spec.to_builtins()
    body.pop("grid", None)
    return {"name": name, "spec": body}


def backtest_payload(spec: BacktestSpec, walk: WalkForwardSpec | None = None) -> dict[str, Any]:
    """The body of `POST /api/v1/backtests` running `spec` (its grid as a sweep, and a
    walk-forward analysis with `walk`) as an API job."""
    body = spec.to_builtins()
    grid = body.pop("grid", {}) or {}
    payload: dict[str, Any] = {"spec": body}
    if grid:
        payload["grid"] = {name: list(values) for name, values in grid.items()}
    if walk is not None:
        payload["walk_forward"] = msgspec.to_builtins(walk)
    return payload
