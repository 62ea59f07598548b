"""Run a backtest spec on bars: prepare the frame, compute targets, size, execute, measure.

`run_backtest(bars, spec, regimes)` is the one entry point the CLI, the sweep workers, the
walk-forward and the API call. Every parameter set of the spec's grid is evaluated in the
same pass: one target column per set (`target:p0`, `target:p1`, ...) on one sorted frame,
so indicators shared by several sets are computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, Final

import msgspec
import polars as pl

from engine.backtest.execution import ROW, RUN, column, simulate, simulate_portfolio
from engine.backtest.metrics import backtest_metrics, regime_metrics
from engine.backtest.spec import BacktestSpec
from engine.backtest.trades import trade_table
from engine.features.per_symbol import Presorted
from engine.features.volatility import realized_vol
from engine.schema import CLOSE, REGIME, SYMBOL, TS
from engine.strategies.base import Bars, SpecError, StrategyParams, get_strategy

__all__ = [
    "PERIODS_PER_YEAR",
    "PORTFOLIO",
    "BacktestResult",
    "attribute_regimes",
    "param_frame",
    "periods_per_year",
    "prepare",
    "run_backtest",
    "simulate_spec",
    "target_frame",
]

PORTFOLIO: Final = "portfolio"
"""The `symbol` of a shared-cash portfolio's rows."""
BENCH: Final = "_bench"
PERIODS_PER_YEAR: Final = {
    "1d": 252,
    "1wk": 52,
    "1w": 52,
    "1mo": 12,
    "1h": 252 * 7,
    "1m": 252 * 390,
}


def periods_per_year(interval: str) -> int:
    """Bars per year used to annualize metrics for `interval` (252 trading days a year)."""
    return PERIODS_PER_YEAR.get(interval, 252)


def _bound(day: Any, end: bool) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)


def prepare(
    bars: pl.DataFrame, spec: BacktestSpec, regimes: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """The spec's bars sorted by (symbol, ts) with `_row`/`_run`, the benchmark return
    `_bench`, and the causal regime columns when the spec names a regime model.

    `regimes`: filtered labels (symbol, ts, regime, probs) as `engine.io.regimes.load_labels`
    returns them. SpecError if a symbol has no bars in range or regimes are missing.
    """
    start, end = _bound(spec.start, end=False), _bound(spec.end, end=True)
    selected = bars.lazy()
    if start is not None:
        selected = selected.filter(pl.col(TS) >= start)
    if end is not None:
        selected = selected.filter(pl.col(TS) <= end)
    wanted = [*spec.symbols, *([spec.benchmark] if spec.benchmark else [])]
    frame = selected.filter(pl.col(SYMBOL).is_in(wanted)).collect()
    present = set(frame[SYMBOL].unique().to_list())
    missing = [s for s in wanted if s not in present]
    if missing:
        raise SpecError(f"no bars in range for: {', '.join(missing)} (ingest them first)")
    bench_returns = None
    if spec.benchmark:
        bench_returns = (
            frame.filter(pl.col(SYMBOL) == spec.benchmark)
            .sort(TS)
            .select(TS, (pl.col(CLOSE) / pl.col(CLOSE).shift(1) - 1.0).alias(BENCH))
        )
        frame = frame.filter(pl.col(SYMBOL).is_in(spec.symbols))
    lf = (
        frame.lazy()
        .sort(SYMBOL, TS)
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int32).over(SYMBOL).alias(ROW),
            pl.col(SYMBOL).rle_id().alias(RUN),
        )
    )
    if bench_returns is None:
        lf = lf.with_columns((pl.col(CLOSE) / pl.col(CLOSE).shift(1) - 1.0).over(RUN).alias(BENCH))
    else:
        lf = lf.join(bench_returns.lazy(), on=TS, how="left", maintain_order="left")
    if spec.regimes is not None:
        lf = _with_regimes(lf, spec, regimes)
    return lf


def _with_regimes(
    lf: pl.LazyFrame, spec: BacktestSpec, regimes: pl.DataFrame | None
) -> pl.LazyFrame:
    assert spec.regimes is not None
    if regimes is None or regimes.is_empty():
        raise SpecError(
            f"no regime labels for model {spec.regimes.model!r}: run `regimelab regimes fit` first"
        )
    labels = regimes.lazy().select(
        SYMBOL,
        TS,
        pl.col(REGIME).cast(pl.Int32),
        pl.col("probs").list.get(pl.col(REGIME), null_on_oob=True).alias("regime_prob"),
    )
    lf = lf.join(labels, on=[SYMBOL, TS], how="left", maintain_order="left")
    reference = spec.regimes.reference
    if reference is not None:
        ref = (
            labels.filter(pl.col(SYMBOL) == reference)
            .select(
                TS,
                pl.col(REGIME).alias("ref_regime"),
                pl.col("regime_prob").alias("ref_regime_prob"),
            )
            .sort(TS)
        )
        # as of each bar (backward): the reference's regime known at that time
        lf = lf.sort(TS).join_asof(ref, on=TS, strategy="backward").sort(SYMBOL, TS)
    return lf


def _sized(raw: pl.Expr, spec: BacktestSpec) -> pl.Expr:
    sizing = spec.sizing
    target = raw.cast(pl.Float64)
    match sizing.direction:
        case "long":
            target = target.clip(lower_bound=0.0)
        case "short":
            target = target.clip(upper_bound=0.0)
        case _:
            pass
    target = target * sizing.fraction
    if sizing.kind == "vol_target":
        scale = (sizing.vol_target / pl.col("_vol")).clip(upper_bound=sizing.max_leverage)
        target = target * scale.fill_nan(None)
    return target


@dataclass(frozen=True, slots=True)
class _Recorder(Presorted):
    """A layout that notes every expression a strategy offers for reuse."""

    seen: list[pl.Expr] = field(default_factory=list)

    def reuse(self, expr: pl.Expr) -> pl.Expr:
        self.seen.append(expr)
        return expr


def _shared_columns(
    lf: pl.LazyFrame,
    targets: Callable[[Any, Bars], pl.Expr],
    param_sets: Sequence[StrategyParams],
    layout: Presorted,
) -> tuple[pl.LazyFrame, Presorted]:
    """Compute once, as columns, the indicators several parameter sets share.

    Polars does not merge equal rolling windows across expressions, so a 5 x 5 grid of
    crossovers would compute 50 moving averages instead of 10. Strategies mark reusable
    indicators with `bars.layout.reuse(expr)`; a dry run records them, and the distinct
    ones become `_shared{i}` columns that the real run reads back.
    """
    recorder = _Recorder(row_in_symbol=layout.row_in_symbol, run=layout.run)
    for params in param_sets:
        targets(params, Bars(layout=recorder, run=RUN))
    distinct: list[pl.Expr] = []
    for expr in recorder.seen:
        if not any(expr.meta.eq(other) for other in distinct):
            distinct.append(expr)
    if not distinct:
        return lf, layout
    names = [f"_shared{i}" for i in range(len(distinct))]
    lf = lf.with_columns(e.alias(n) for e, n in zip(distinct, names, strict=True))
    shared = tuple(zip(distinct, names, strict=True))
    return lf, Presorted(row_in_symbol=layout.row_in_symbol, run=layout.run, shared=shared)


def target_frame(
    lf: pl.LazyFrame, spec: BacktestSpec, param_sets: Sequence[StrategyParams]
) -> tuple[pl.LazyFrame, list[str]]:
    """`lf` with a sized `target:p{i}` column per parameter set; returns it and the keys."""
    definition = get_strategy(spec.strategy)
    layout = Presorted(row_in_symbol=pl.col(ROW), run=pl.col(RUN))
    if spec.sizing.kind == "vol_target":
        vol = realized_vol(
            spec.sizing.vol_window,
            annualization=periods_per_year(spec.interval),
            presorted=layout,
        )
        lf = lf.with_columns(vol.alias("_vol"))
    if len(param_sets) > 1:
        lf, layout = _shared_columns(lf, definition.targets, param_sets, layout)
    bars = Bars(layout=layout, run=RUN)
    keys = [f"p{i}" for i in range(len(param_sets))]
    lf = lf.with_columns(
        _sized(definition.targets(params, bars), spec).alias(column("target", key))
        for key, params in zip(keys, param_sets, strict=True)
    )
    if spec.portfolio is not None:
        cap, gross_cap = spec.portfolio.weight_cap, spec.portfolio.max_gross
        capped = [pl.col(column("target", k)).clip(-cap, cap) for k in keys]
        lf = lf.with_columns(
            e.alias(column("target", k)) for e, k in zip(capped, keys, strict=True)
        )
        lf = lf.with_columns(
            (
                pl.col(column("target", k))
                * (gross_cap / pl.col(column("target", k)).abs().sum().over(TS)).clip(
                    upper_bound=1.0
                )
            ).alias(column("target", k))
            for k in keys
        )
    return lf, keys


def simulate_spec(lf: pl.LazyFrame, spec: BacktestSpec, keys: Sequence[str]) -> pl.DataFrame:
    """Execute the target columns: per-symbol accounts, or one shared-cash portfolio
    (returned with symbol = "portfolio", regime = the reference symbol's regime)."""
    if spec.portfolio is None:
        return simulate(lf, keys, spec.execution).collect()
    frame = lf.collect()
    parts: list[pl.DataFrame] = []
    for key in keys:
        target = column("target", key)
        account, _ = simulate_portfolio(frame, target, spec.execution)
        parts.append(account.rename({c: column(c, key) for c in account.columns if c != TS}))
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.join(part, on=TS, how="left")
    per_ts = frame.group_by(TS).agg(
        pl.col(BENCH).mean(),
        *([pl.col("ref_regime").first().alias(REGIME)] if "ref_regime" in frame.columns else []),
    )
    merged = merged.join(per_ts, on=TS, how="left").sort(TS)
    return merged.with_columns(
        pl.lit(PORTFOLIO).alias(SYMBOL),
        pl.int_range(pl.len(), dtype=pl.Int32).alias(ROW),
        *(pl.col(column("trade", k)) > 0 for k in keys),
    ).with_columns(pl.col(column("exposure", k)).alias(column("weight", k)) for k in keys)


def attribute_regimes(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with each bar's `regime` replaced by the regime known at the previous bar's
    close: a bar's return is earned by the position held from that close, so it belongs
    to the regime the market was in when the bar began. (The filtered label of bar t
    already reflects bar t's own move; grouping by it would book the crash that flips the
    filter onto the regime it flipped to.)"""
    if REGIME not in frame.columns:
        return frame
    return frame.with_columns(pl.col(REGIME).shift(1).over(SYMBOL))


@dataclass(slots=True)
class BacktestResult:
    """Metrics (and optionally curves and trades) of every parameter set x symbol."""

    spec: BacktestSpec
    params: list[StrategyParams]
    keys: list[str]
    metrics: pl.DataFrame
    """key, <grid parameters>, params (JSON), symbol, then `METRICS`."""
    regime_metrics: pl.DataFrame | None = None
    """key, symbol, regime, metrics per regime (when the spec names a regime model)."""
    trades: pl.DataFrame | None = None
    equity: pl.DataFrame | None = None
    """key, symbol, ts, equity, weight, fees, benchmark (growth of 1 in the benchmark)."""


def param_frame(
    spec: BacktestSpec, keys: Sequence[str], params: Sequence[StrategyParams]
) -> pl.DataFrame:
    """key, one column per grid parameter, and `params` (the full set as JSON)."""
    data: dict[str, Any] = {"key": list(keys)}
    for name in spec.grid:
        data[name] = [msgspec.to_builtins(getattr(p, name)) for p in params]
    data["params"] = [msgspec.json.encode(p).decode() for p in params]
    return pl.DataFrame(data, strict=False)


def _with_params(
    metrics: pl.DataFrame,
    spec: BacktestSpec,
    keys: Sequence[str],
    param_sets: Sequence[StrategyParams],
) -> pl.DataFrame:
    """`metrics` (key, symbol, ...) led by the `param_frame` columns of each row's key."""
    params = param_frame(spec, keys, param_sets)
    return params.join(metrics, on="key", how="right").select(
        *params.columns, *[c for c in metrics.columns if c not in params.columns]
    )


def _curves(frame: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    parts = [
        frame.select(
            pl.lit(key).alias("key"),
            SYMBOL,
            TS,
            pl.col(column("equity", key)).alias("equity"),
            pl.col(column("weight", key)).alias("weight"),
            pl.col(column("fees", key)).alias("fees"),
            (1.0 + pl.col(BENCH).fill_null(0.0)).cum_prod().over(SYMBOL).alias("benchmark"),
        )
        for key in keys
    ]
    return pl.concat(parts)


def run_backtest(
    bars: pl.DataFrame,
    spec: BacktestSpec,
    regimes: pl.DataFrame | None = None,
    *,
    keep_equity: bool = True,
    keep_trades: bool = True,
) -> BacktestResult:
    """Backtest every parameter set of `spec` on `bars` (canonical bars, any order)."""
    param_sets = spec.param_sets()
    lf = prepare(bars, spec, regimes)
    lf, keys = target_frame(lf, spec, param_sets)
    # --- metrics-only runs (sweeps): one fused numba pass instead of simulate, trades and
    # metrics below; engine/backtest/fast.py, tested equal to them
    if not keep_equity and not keep_trades and spec.portfolio is None and spec.regimes is None:
        from engine.backtest.fast import fast_metrics  # imports numba (0.5 s): on first use

        periods = periods_per_year(spec.interval)
        metrics = fast_metrics(lf, keys, spec.execution, periods_per_year=periods)
        metrics = _with_params(metrics, spec, keys, param_sets)
        return BacktestResult(spec=spec, params=param_sets, keys=keys, metrics=metrics)
    # --- end of the metrics-only fast path
    frame = attribute_regimes(simulate_spec(lf, spec, keys))
    periods = periods_per_year(spec.interval)
    cash = spec.execution.init_cash
    trades = trade_table(frame, keys)
    metrics = backtest_metrics(frame, keys, init_cash=cash, periods_per_year=periods, trades=trades)
    metrics = _with_params(metrics, spec, keys, param_sets)
    by_regime = None
    if REGIME in frame.columns:
        by_regime = regime_metrics(
            frame, keys, init_cash=cash, periods_per_year=periods, trades=trades
        )
    return BacktestResult(
        spec=spec,
        params=param_sets,
        keys=keys,
        metrics=metrics,
        regime_metrics=by_regime,
        trades=trades if keep_trades else None,
        equity=_curves(frame, keys) if keep_equity else None,
    )
