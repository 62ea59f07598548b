"""Robustness of a return series: bootstrap many alternative histories and measure them.

`monte_carlo` resamples a strategy's per-bar returns in circular blocks (keeping the
short-range dependence of volatility clusters inside each block) or its per-trade
returns one by one, compounds every path, and reports the spread of total return, CAGR,
max drawdown and Sharpe across paths plus quantile bands of the equity curve.

Paths are built step by step in column chunks (all paths at once, NumPy only): the chunk
carries each path's equity, running peak and return sums forward, so memory stays at
paths x chunk however long the series is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from engine.schema import SYMBOL, TS
from engine.strategies.base import require

__all__ = ["RETURN", "SERIES", "STATISTICS", "MonteCarloResult", "monte_carlo", "quantile_name"]

Method = Literal["block", "trades"]
FloatArray = npt.NDArray[np.float64]

RETURN: Final = "ret"
"""Column of per-bar (or per-trade) simple returns in a returns frame."""
SERIES: Final = "series"
"""The `symbol` given to a bare NumPy array of returns."""
STATISTICS: Final = ("total_return", "cagr", "max_drawdown", "sharpe")
"""Per-path statistics: drawdowns are negative fractions (-0.25 = 25% below the peak)."""
MAX_PATHS: Final = 100_000
_CELLS_PER_CHUNK: Final = 4_000_000  # paths x steps held in memory at once


@dataclass(slots=True)
class MonteCarloResult:
    """Bootstrap distribution of a return series' outcomes, per symbol."""

    summary: pl.DataFrame
    """symbol, statistic (`STATISTICS`), mean, one column per quantile (q05, q50, ...) and
    prob_negative: the share of paths where the statistic is below zero (for total_return,
    the probability of a loss)."""
    bands: pl.DataFrame
    """symbol, step (0 = start, equity = init_cash), one column per quantile of equity."""
    paths: pl.DataFrame
    """symbol, path, then one column per statistic: every path's outcome."""
    method: Method
    block: int
    seed: int

    def prob_loss(self, symbol: str = SERIES) -> float:
        """Share of paths of `symbol` that end below their initial cash."""
        row = self.summary.filter(
            (pl.col(SYMBOL) == symbol) & (pl.col("statistic") == "total_return")
        )
        if row.is_empty():
            raise KeyError(symbol)
        return float(row["prob_negative"][0])


def quantile_name(q: float) -> str:
    """Column name of quantile `q`: 0.05 -> q05, 0.5 -> q50, 0.025 -> q2.5."""
    return f"q{q * 100:02g}"


def _series(returns: pl.DataFrame | npt.ArrayLike) -> dict[str, FloatArray]:
    """Each symbol's returns in time order, nulls dropped."""
    if isinstance(returns, pl.DataFrame):
        missing = [c for c in (SYMBOL, RETURN) if c not in returns.columns]
        require(not missing, f"returns frame lacks column(s): {', '.join(missing)}")
        ordered = returns.sort(SYMBOL, TS) if TS in returns.columns else returns
        ordered = ordered.filter(pl.col(RETURN).is_not_null())
        return {
            str(symbol): part[RETURN].cast(pl.Float64).to_numpy()
            for (symbol,), part in ordered.group_by(SYMBOL, maintain_order=True)
        }
    values = np.asarray(returns, dtype=np.float64)
    require(values.ndim == 1, f"returns array must be 1-D, got shape {values.shape}")
    return {SERIES: values[~np.isnan(values)]}


def _validate(
    series: dict[str, FloatArray],
    *,
    paths: int,
    block: int,
    method: str,
    quantiles: Sequence[float],
    init_cash: float,
    periods_per_year: float,
) -> None:
    require(1 <= paths <= MAX_PATHS, f"paths must be in [1, {MAX_PATHS}], got {paths}")
    require(block >= 1, f"block must be >= 1, got {block}")
    require(method in ("block", "trades"), f"method must be 'block' or 'trades', got {method!r}")
    require(len(quantiles) > 0, "give at least one quantile")
    require(all(0 <= q <= 1 for q in quantiles), f"quantiles must be in [0, 1], got {quantiles}")
    require(init_cash > 0, f"init_cash must be > 0, got {init_cash}")
    require(periods_per_year > 0, f"periods_per_year must be > 0, got {periods_per_year}")
    require(bool(series), "no returns given")
    for symbol, values in series.items():
        require(len(values) >= 2, f"{symbol}: need at least 2 returns, got {len(values)}")
        require(bool(np.isfinite(values).all()), f"{symbol}: returns must be finite")
        require(bool((values >= -1).all()), f"{symbol}: returns must be >= -1 (a total loss)")


class _Draws:
    """Every path's sampled positions as a function of block starts drawn up front:
    step t of a path reads position (start of its block t // size + t % size) mod n.
    Single draws (size 1) for trades."""

    def __init__(
        self, rng: np.random.Generator, n: int, paths: int, block: int, method: Method
    ) -> None:
        self.n = n
        self.size = 1 if method == "trades" else min(block, n)
        self.starts = rng.integers(0, n, size=(paths, math.ceil(n / self.size)))

    def index(self, first: int, stop: int) -> npt.NDArray[np.int64]:
        """Positions read at steps first..stop-1 (paths x steps)."""
        steps = np.arange(first, min(stop, self.n))
        return (self.starts[:, steps // self.size] + steps % self.size) % self.n


def _simulate(
    returns: FloatArray, draws: _Draws, quantiles: Sequence[float], init_cash: float
) -> tuple[dict[str, FloatArray], FloatArray]:
    """Per path: final equity, max drawdown, sum and sum of squares of the returns; and
    the equity quantiles at each step ((steps + 1) x quantiles, step 0 = init_cash)."""
    paths, n = len(draws.starts), draws.n
    equity = np.full(paths, init_cash)
    peak = equity.copy()
    drawdown = np.zeros(paths)
    total = np.zeros(paths)
    squares = np.zeros(paths)
    bands = [np.quantile(equity[:, None], quantiles, axis=0).T]
    chunk = max(1, _CELLS_PER_CHUNK // paths)
    for first in range(0, n, chunk):
        sampled = returns[draws.index(first, first + chunk)]
        curve = equity[:, None] * np.cumprod(1.0 + sampled, axis=1)
        peaks = np.maximum(peak[:, None], np.maximum.accumulate(curve, axis=1))
        drawdown = np.minimum(drawdown, (curve / peaks - 1.0).min(axis=1))
        total += sampled.sum(axis=1)
        squares += (sampled * sampled).sum(axis=1)
        equity, peak = curve[:, -1], peaks[:, -1]
        bands.append(np.quantile(curve, quantiles, axis=0).T)
    sums = {"final": equity, "drawdown": drawdown, "total": total, "squares": squares}
    return sums, np.concatenate(bands, axis=0)


def _statistics(
    sums: dict[str, FloatArray], n: int, init_cash: float, periods_per_year: float
) -> dict[str, FloatArray]:
    growth = sums["final"] / init_cash
    mean = sums["total"] / n
    variance = np.maximum(sums["squares"] - n * mean * mean, 0.0) / (n - 1)
    std = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, mean / std * math.sqrt(periods_per_year), np.nan)
        cagr = np.where(growth > 0, growth ** (periods_per_year / n) - 1.0, -1.0)
    return {
        "total_return": growth - 1.0,
        "cagr": cagr,
        "max_drawdown": sums["drawdown"],
        "sharpe": sharpe,
    }


def _summary(symbol: str, stats: dict[str, FloatArray], quantiles: Sequence[float]) -> pl.DataFrame:
    rows: dict[str, list[object]] = {SYMBOL: [], "statistic": [], "mean": []}
    rows.update({quantile_name(q): [] for q in quantiles})
    rows["prob_negative"] = []
    for name in STATISTICS:
        values = stats[name]
        finite = values[~np.isnan(values)]
        rows[SYMBOL].append(symbol)
        rows["statistic"].append(name)
        rows["mean"].append(float(finite.mean()) if finite.size else None)
        levels = np.quantile(finite, quantiles) if finite.size else [None] * len(quantiles)
        for q, level in zip(quantiles, levels, strict=True):
            rows[quantile_name(q)].append(None if level is None else float(level))
        rows["prob_negative"].append(float((finite < 0).mean()) if finite.size else None)
    return pl.DataFrame(
        rows, schema_overrides={k: pl.Float64 for k in rows if k not in (SYMBOL, "statistic")}
    )


def monte_carlo(
    returns: pl.DataFrame | npt.ArrayLike,
    *,
    paths: int = 1000,
    block: int = 21,
    method: Method = "block",
    seed: int = 0,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    init_cash: float = 1.0,
    periods_per_year: float = 252,
) -> MonteCarloResult:
    """Bootstrap distribution of total return, CAGR, max drawdown and Sharpe per symbol.

    `returns`: a frame (symbol, ts, ret) of simple per-bar returns, or a 1-D array of one
    series (reported as symbol "series"); nulls/NaNs are dropped. method="block": each
    path concatenates circular blocks of `block` consecutive returns with random starts
    (block = len(returns) gives circular shifts of the series) and has as many steps as
    the input. method="trades": the input holds per-trade returns and each path draws as
    many trades with replacement, one at a time (`block` is not used); `periods_per_year`
    is then trades per year, for CAGR and Sharpe. Deterministic for a seed: each symbol's
    draws come from its own child of `SeedSequence(seed)`, in input order.
    """
    series = _series(returns)
    _validate(
        series,
        paths=paths,
        block=block,
        method=method,
        quantiles=quantiles,
        init_cash=init_cash,
        periods_per_year=periods_per_year,
    )
    quantiles = sorted(set(quantiles))
    names = [quantile_name(q) for q in quantiles]
    seeds = np.random.SeedSequence(seed).spawn(len(series))
    summaries, bands, outcomes = [], [], []
    for (symbol, values), child in zip(series.items(), seeds, strict=True):
        draws = _Draws(np.random.default_rng(child), len(values), paths, block, method)
        sums, levels = _simulate(values, draws, quantiles, init_cash)
        stats = _statistics(sums, len(values), init_cash, periods_per_year)
        summaries.append(_summary(symbol, stats, quantiles))
        bands.append(
            pl.DataFrame(
                {SYMBOL: symbol, "step": np.arange(len(values) + 1, dtype=np.int64)}
            ).with_columns(pl.Series(name, levels[:, i]) for i, name in enumerate(names))
        )
        outcomes.append(
            pl.DataFrame(
                {SYMBOL: symbol, "path": np.arange(paths, dtype=np.int64), **stats},
            )
        )
    return MonteCarloResult(
        summary=pl.concat(summaries),
        bands=pl.concat(bands),
        paths=pl.concat(outcomes),
        method=method,
        block=block,
        seed=seed,
    )
