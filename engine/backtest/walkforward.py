"""Walk-forward analysis: choose parameters on a training window, trade them on the next,
unseen window, roll forward, and stitch the unseen windows into one out-of-sample curve.

Strategies are causal (the target of bar t uses data up to t only), so the targets of
every grid parameter set are computed once on the full history; each window then only
re-executes targets on its own bars, all parameter sets and symbols at once. A window's
account opens flat at its anchor, the symbol's last bar before the window: the target
decided at the anchor's close fills on the window's first bar (at its close or open, as
the spec executes) and pays its entry fee, which is the earliest a choice made at the
anchor's close could trade; nothing after the window's end is seen. The chosen set is
traded on the test window from the equity the out-of-sample curve had at the end of the
previous test window (positions are not carried across: the previous window's position
ends marked at its last close, without an exit fee), so the stitched curve is continuous
and compounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import polars as pl

from engine.backtest.engine import (
    param_frame,
    periods_per_year,
    prepare,
    target_frame,
)
from engine.backtest.execution import ROW, column, simulate
from engine.backtest.metrics import BENCH, METRICS, backtest_metrics
from engine.backtest.spec import BacktestSpec
from engine.schema import SYMBOL, TS
from engine.strategies.base import StrategyParams, require

__all__ = [
    "OBJECTIVES",
    "OOS",
    "Progress",
    "WalkForwardResult",
    "WalkForwardSpec",
    "Window",
    "walk_forward",
    "windows",
]

Progress = Callable[[int, int, str], None]
"""progress(done, total, label), called after each window."""
OOS: Final = "oos"
"""Key of the stitched out-of-sample target (`target:oos`, `equity:oos`, ...)."""
OBJECTIVES: Final = (
    "total_return",
    "cagr",
    "annual_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "alpha",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_trade_return",
)
"""The `METRICS` a walk-forward can maximize: higher is better for each (max_drawdown is
negative, so its maximum is the shallowest drawdown)."""
_ANCHOR: Final = "_anchor"
_NEXT_TS: Final = "_next_ts"
_ORDINAL: Final = "_ordinal"
_SCORE: Final = "_score"


class WalkForwardSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a walk-forward analysis cuts the history and picks parameters.

    The objective is always maximized: `metric` must be a metric where higher is better,
    or max_drawdown, which is negative (-0.2 = 20% below the peak), so maximizing it picks
    the shallowest drawdown. Ties and missing scores go to the earliest grid set."""

    train: int = 504
    """Bars of each training window (the first one, in anchored mode)."""
    test: int = 126
    """Bars of each test window (the last one may be shorter)."""
    step: int | None = None
    """Bars between the starts of consecutive test windows; None = `test`, so the test
    windows tile the history after the first training window."""
    mode: Literal["rolling", "anchored"] = "rolling"
    """rolling: the training window has `train` bars and moves with the test window;
    anchored: it starts at the first bar and grows."""
    metric: str = "sharpe"
    """Objective maximized on the training window (one of `OBJECTIVES`)."""
    select: Literal["per_symbol", "universe"] = "per_symbol"
    """per_symbol: each symbol's own best set; universe: the set with the best mean
    objective across symbols, traded by all of them."""

    def __post_init__(self) -> None:
        require(self.train >= 20, f"train must be >= 20 bars, got {self.train}")
        require(self.test >= 1, f"test must be >= 1 bar, got {self.test}")
        require(
            self.mode in ("rolling", "anchored"),
            f"mode must be rolling or anchored, got {self.mode!r}",
        )
        require(
            self.select in ("per_symbol", "universe"),
            f"select must be per_symbol or universe, got {self.select!r}",
        )
        require(
            self.step is None or self.step >= self.test,
            f"step ({self.step}) must be >= test ({self.test}) so test windows never overlap",
        )
        require(
            self.metric in OBJECTIVES,
            f"metric {self.metric!r} cannot be maximized"
            + (" (more is not better)" if self.metric in METRICS else " (unknown metric)")
            + f"; choose one of {', '.join(OBJECTIVES)}",
        )

    @property
    def stride(self) -> int:
        """Bars between consecutive test window starts."""
        return self.test if self.step is None else self.step


@dataclass(frozen=True, slots=True)
class Window:
    """One walk-forward step: train on [train_start, train_end], trade [test_start,
    test_end] (inclusive timestamps; train_end is the bar before test_start)."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime


@dataclass(slots=True)
class WalkForwardResult:
    """Choices, stitched out-of-sample curves and their metrics, per symbol."""

    spec: BacktestSpec
    walk: WalkForwardSpec
    windows: pl.DataFrame
    """window, train_start, train_end, test_start, test_end, symbol, key, <grid
    parameters>, params (JSON), in_sample and out_of_sample (the objective of the chosen
    set on the window's training and test bars)."""
    equity: pl.DataFrame
    """symbol, ts, window, key, equity (stitched out of sample), weight, fees, benchmark
    (buy-and-hold of the spec's benchmark over the same span, from the same cash)."""
    metrics: pl.DataFrame
    """symbol, then `METRICS` of the stitched out-of-sample curve."""
    stability: pl.DataFrame
    """symbol, param, value (JSON), count and share of windows choosing it, changes
    (switches between consecutive windows), mean and std of the chosen value (numeric
    parameters only); changes, mean and std repeat on every value row of the parameter."""


def windows(ts: Sequence[datetime] | pl.Series, spec: WalkForwardSpec) -> list[Window]:
    """Walk-forward windows over sorted unique timestamps: test windows start after the
    first `train` bars, every `spec.stride` bars, never overlap, and (stride == test)
    tile the rest of the history."""
    series = ts if isinstance(ts, pl.Series) else pl.Series(TS, list(ts))
    n = len(series)
    require(
        n >= spec.train + 1,
        f"walk-forward needs more than train={spec.train} bars, got {n}",
    )
    require(series.is_sorted() and series.n_unique() == n, "timestamps must be sorted and unique")
    result = []
    for index, start in enumerate(range(spec.train, n, spec.stride)):
        end = min(start + spec.test, n) - 1
        first = 0 if spec.mode == "anchored" else start - spec.train
        result.append(Window(index, series[first], series[start - 1], series[start], series[end]))
    return result


def _window_frame(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.LazyFrame:
    """Bars in [start, end] per symbol plus the symbol's anchor (its last bar before
    `start`, flagged `_anchor`), `_row` restarted so each account opens at the anchor."""
    ts = pl.col(TS)
    return (
        frame.lazy()
        .filter((ts <= end) & ((ts >= start) | (pl.col(_NEXT_TS) >= start)))
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int32).over(SYMBOL).alias(ROW),
            (ts < start).alias(_ANCHOR),
        )
    )


def _without_anchors(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The window's own bars, `_row` counted from its first bar."""
    return (
        lf.filter(~pl.col(_ANCHOR))
        .drop(_ANCHOR)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over(SYMBOL).alias(ROW))
    )


def _scores(
    frame: pl.DataFrame, keys: Sequence[str], metric: str, cash: float, periods: int
) -> pl.DataFrame:
    """key, symbol, _score: the objective of each key (NaN as null)."""
    table = backtest_metrics(frame, keys, init_cash=cash, periods_per_year=periods)
    return table.select("key", SYMBOL, pl.col(metric).cast(pl.Float64).fill_nan(None).alias(_SCORE))


def _choose(scores: pl.DataFrame, keys: Sequence[str], select: str) -> pl.DataFrame:
    """symbol, key, in_sample: the best key per symbol (or one for all, `universe`)."""
    ordinals = pl.DataFrame({"key": list(keys), _ORDINAL: range(len(keys))})
    ranked = scores.join(ordinals, on="key")
    if select == "universe":
        best = (
            ranked.group_by("key", _ORDINAL)
            .agg(pl.col(_SCORE).mean())
            .sort(_SCORE, _ORDINAL, descending=[True, False], nulls_last=True)
            .item(0, "key")
        )
        chosen = ranked.filter(pl.col("key") == best)
    else:
        chosen = (
            ranked.sort(SYMBOL, _SCORE, _ORDINAL, descending=[False, True, False], nulls_last=True)
            .group_by(SYMBOL, maintain_order=True)
            .first()
        )
    return chosen.select(SYMBOL, "key", pl.col(_SCORE).alias("in_sample"))


def _chosen_target(keys: Sequence[str]) -> pl.Expr:
    """Each row's target of the key chosen for its symbol (column `key`)."""
    return pl.coalesce(
        pl.when(pl.col("key") == key).then(pl.col(column("target", key))) for key in keys
    ).alias(column("target", OOS))


def _out_of_sample(
    frame: pl.DataFrame,
    window: Window,
    chosen: pl.DataFrame,
    keys: Sequence[str],
    spec: BacktestSpec,
) -> pl.DataFrame:
    """The chosen targets executed on the test window from `init_cash` (anchors dropped):
    the OOS execution columns plus `key` and `window`."""
    test = _window_frame(frame, window.test_start, window.test_end).join(
        chosen.lazy().select(SYMBOL, "key"), on=SYMBOL, how="inner", maintain_order="left"
    )
    executed = simulate(test.with_columns(_chosen_target(keys)), [OOS], spec.execution)
    return (
        _without_anchors(executed)
        .with_columns(pl.lit(window.index, dtype=pl.Int32).alias("window"))
        .collect()
    )


def _carried(tested: pl.DataFrame, carry: dict[str, float], cash: float) -> pl.DataFrame:
    """`tested` with equity and fees scaled from `cash` to each symbol's carried equity."""
    scale = pl.col(SYMBOL).replace_strict(carry, default=cash, return_dtype=pl.Float64) / cash
    return tested.with_columns(
        (pl.col(column(kind, OOS)) * scale).alias(column(kind, OOS)) for kind in ("equity", "fees")
    )


def _stability(
    choices: pl.DataFrame, spec: BacktestSpec, keys: Sequence[str], params: Sequence[StrategyParams]
) -> pl.DataFrame:
    """How often each grid value was chosen per symbol, how often the choice switched,
    and the mean/std of numeric choices."""
    rows: dict[str, list[Any]] = {"key": [], "param": [], "value": [], "number": []}
    for key, values in zip(keys, params, strict=True):
        for name in spec.grid:
            value = getattr(values, name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            rows["key"].append(key)
            rows["param"].append(name)
            rows["value"].append(msgspec.json.encode(value).decode())
            rows["number"].append(float(value) if numeric else None)
    values_of = pl.DataFrame(
        rows,
        schema={"key": pl.String, "param": pl.String, "value": pl.String, "number": pl.Float64},
    )
    long = (
        choices.select("window", SYMBOL, "key")
        .join(values_of, on="key")
        .sort(SYMBOL, "param", "window")
    )
    per_param = long.group_by(SYMBOL, "param").agg(
        pl.len().alias("_windows"),
        (pl.col("value") != pl.col("value").shift(1)).sum().cast(pl.Int64).alias("changes"),
        pl.col("number").mean().alias("mean"),
        pl.col("number").std().alias("std"),
    )
    return (
        long.group_by(SYMBOL, "param", "value")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .join(per_param, on=[SYMBOL, "param"])
        .select(
            SYMBOL,
            "param",
            "value",
            "count",
            (pl.col("count") / pl.col("_windows")).alias("share"),
            "changes",
            "mean",
            "std",
        )
        .sort(SYMBOL, "param", "value")
    )


def _benchmark(frame: pl.DataFrame, start: datetime, cash: float) -> pl.DataFrame:
    """symbol, ts, benchmark: `cash` held in the benchmark from each symbol's anchor of
    the first test window on (`_bench` returns, no costs)."""
    return frame.filter(pl.col(TS) >= start).select(
        SYMBOL,
        TS,
        ((1.0 + pl.col(BENCH).fill_null(0.0)).cum_prod().over(SYMBOL) * cash).alias("benchmark"),
    )


def _walk_window(
    frame: pl.DataFrame,
    window: Window,
    keys: Sequence[str],
    spec: BacktestSpec,
    wf: WalkForwardSpec,
    *,
    carry: dict[str, float],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One window: its choices (symbol, key, in_sample, out_of_sample and the window's
    bounds) and its out-of-sample execution, grown from each symbol's carried equity."""
    cash, periods = spec.execution.init_cash, periods_per_year(spec.interval)
    train = _window_frame(frame, window.train_start, window.train_end)
    in_sample = _without_anchors(simulate(train, keys, spec.execution)).collect()
    chosen = _choose(_scores(in_sample, keys, wf.metric, cash, periods), keys, wf.select)
    tested = _out_of_sample(frame, window, chosen, keys, spec)
    outcome = _scores(tested, [OOS], wf.metric, cash, periods).select(
        SYMBOL, pl.col(_SCORE).alias("out_of_sample")
    )
    choices = chosen.join(outcome, on=SYMBOL, how="left").with_columns(
        pl.lit(window.index, dtype=pl.Int32).alias("window"),
        pl.lit(window.train_start).alias("train_start"),
        pl.lit(window.train_end).alias("train_end"),
        pl.lit(window.test_start).alias("test_start"),
        pl.lit(window.test_end).alias("test_end"),
    )
    return choices, _carried(tested, carry, cash)


def _choice_table(choices: pl.DataFrame, params: pl.DataFrame, spec: BacktestSpec) -> pl.DataFrame:
    """`WalkForwardResult.windows`: the choices with the chosen parameters."""
    return (
        choices.join(params, on="key", how="left")
        .select(
            "window",
            "train_start",
            "train_end",
            "test_start",
            "test_end",
            SYMBOL,
            "key",
            *spec.grid,
            "params",
            "in_sample",
            "out_of_sample",
        )
        .sort("window", SYMBOL)
    )


def _equity(
    stitched: pl.DataFrame, frame: pl.DataFrame, first: Window, cash: float
) -> pl.DataFrame:
    """`WalkForwardResult.equity`: the stitched curve and the benchmark's."""
    return stitched.select(
        SYMBOL,
        TS,
        "window",
        "key",
        pl.col(column("equity", OOS)).alias("equity"),
        pl.col(column("weight", OOS)).alias("weight"),
        pl.col(column("fees", OOS)).alias("fees"),
    ).join(_benchmark(frame, first.test_start, cash), on=[SYMBOL, TS], how="left")


def walk_forward(
    bars: pl.DataFrame,
    spec: BacktestSpec,
    wf: WalkForwardSpec,
    regimes: pl.DataFrame | None = None,
    progress: Progress | None = None,
) -> WalkForwardResult:
    """Walk-forward analysis of `spec`'s grid on `bars`: per window, the best parameter
    set in sample (by `wf.metric`, per symbol or for the universe), traded out of sample;
    the stitched out-of-sample curve, its metrics and the stability of the choices.

    Each symbol is its own account (a shared-cash portfolio spec is refused). Windows
    are cut on the union of all symbols' timestamps; a symbol with no bars in a training
    window sits out the window.
    """
    require(spec.portfolio is None, "walk-forward runs per-symbol accounts: drop `portfolio`")
    param_sets = spec.param_sets()
    lf, keys = target_frame(prepare(bars, spec, regimes), spec, param_sets)
    frame = lf.with_columns(pl.col(TS).shift(-1).over(SYMBOL).alias(_NEXT_TS)).collect()
    cuts = windows(frame[TS].unique().sort(), wf)
    carry: dict[str, float] = {}
    choices, curves = [], []
    for done, window in enumerate(cuts, start=1):
        chosen, tested = _walk_window(frame, window, keys, spec, wf, carry=carry)
        choices.append(chosen)
        curves.append(tested)
        last = tested.group_by(SYMBOL).agg(pl.col(column("equity", OOS)).last())
        carry.update(zip(last[SYMBOL], last[column("equity", OOS)], strict=True))
        if progress is not None:
            span = f"{window.test_start:%Y-%m-%d}..{window.test_end:%Y-%m-%d}"
            progress(done, len(cuts), f"window {done}/{len(cuts)}: test {span}")
    cash, periods = spec.execution.init_cash, periods_per_year(spec.interval)
    stitched = (
        pl.concat(curves)
        .sort(SYMBOL, TS)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over(SYMBOL).alias(ROW))
    )
    table = _choice_table(pl.concat(choices), param_frame(spec, keys, param_sets), spec)
    return WalkForwardResult(
        spec=spec,
        walk=wf,
        windows=table,
        equity=_equity(stitched, frame, cuts[0], cash),
        metrics=backtest_metrics(stitched, [OOS], init_cash=cash, periods_per_year=periods).drop(
            "key"
        ),
        stability=_stability(table, spec, keys, param_sets),
    )
