"""Jobs of this domain: backtests (single runs, sweeps, walk-forward) and live signals."""

from __future__ import annotations

from typing import Any, Final

import msgspec
import polars as pl

from api.domain.backtests.schemas import MonteCarloOptions
from api.lib.jobs import JobContext, job
from engine.backtest.montecarlo import RETURN, monte_carlo
from engine.backtest.runs import (
    BacktestRunError,
    compute_signals,
    run_stored_backtest,
    run_stored_walk_forward,
)
from engine.backtest.spec import BacktestSpec
from engine.backtest.walkforward import WalkForwardSpec
from engine.io.backtests import link_backtest_run
from engine.io.db import connect
from engine.schema import SYMBOL, TS
from engine.strategies.base import SpecError

__all__ = ["BacktestJob", "SignalsJob", "backtest", "best_result", "signals_compute"]

SIGNALS_SCHEDULE: Final = "45 22 * * 1-5"
"""After the US close and the evening ingest, on weekdays."""
_HEADLINE: Final = ("sharpe", "total_return", "cagr", "max_drawdown", "trades")


class BacktestJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A validated backtest: the exact engine spec plus how to analyse it."""

    spec: BacktestSpec
    walk_forward: WalkForwardSpec | None = None
    monte_carlo: MonteCarloOptions | None = None
    strategy_id: int | None = None
    """The saved strategy the spec came from (the run is linked to it)."""


class SignalsJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which saved strategies to compute signals for (default: all)."""

    strategy: str | None = None


def best_result(metrics: pl.DataFrame) -> dict[str, Any] | None:
    """Symbol, parameters and headline metrics of the row with the highest Sharpe ratio."""
    if metrics.is_empty():
        return None
    row = metrics.sort("sharpe", descending=True, nulls_last=True).row(0, named=True)
    params = row.get("params")
    return {
        "symbol": row[SYMBOL],
        "params": msgspec.json.decode(params) if isinstance(params, str) else params,
        **{name: row[name] for name in _HEADLINE if name in row},
    }


def _bootstrap(equity: pl.DataFrame, options: MonteCarloOptions) -> dict[str, Any]:
    """Monte Carlo summary of each curve's per-bar returns, or the reason it could not run."""
    returns = equity.sort(SYMBOL, TS).select(
        SYMBOL, TS, pl.col("equity").pct_change().over(SYMBOL).alias(RETURN)
    )
    try:
        result = monte_carlo(returns, paths=options.paths, block=options.block, seed=options.seed)
    except SpecError as exc:
        return {"error": str(exc)}
    return {"paths": options.paths, "block": options.block, "summary": result.summary.to_dicts()}


def _link(ctx: JobContext, run_id: int, strategy_id: int | None) -> None:
    if strategy_id is None:
        return
    with connect(ctx.database_url, timeout=ctx.settings.connect_timeout, autocommit=True) as conn:
        link_backtest_run(conn, run_id, strategy_id)


@job("backtest", params=BacktestJob)
def backtest(ctx: JobContext, params: BacktestJob) -> dict[str, Any]:
    """Run a backtest, sweep or walk-forward analysis on stored bars and store its results."""
    spec, timeout = params.spec, ctx.settings.connect_timeout
    equity: pl.DataFrame | None
    try:
        if params.walk_forward is not None:
            run_id, walked = run_stored_walk_forward(
                ctx.database_url, spec, params.walk_forward, progress=ctx.steps, timeout=timeout
            )
            metrics, equity = walked.metrics, walked.equity
            extra: dict[str, Any] = {"windows": walked.windows["window"].n_unique()}
        else:
            run_id, result = run_stored_backtest(
                ctx.database_url,
                spec,
                progress=ctx.steps,
                timeout=timeout,
                ray_address=ctx.settings.ray_address,
            )
            metrics, equity, extra = result.metrics, result.equity, {}
    except BacktestRunError as exc:
        if exc.run_id is not None:
            _link(ctx, exc.run_id, params.strategy_id)
        raise
    _link(ctx, run_id, params.strategy_id)
    ctx.invalidate("backtests")
    summary: dict[str, Any] = {
        "run_id": run_id,
        "kind": "walk_forward" if params.walk_forward is not None else _kind(spec),
        "results": metrics.height,
        "best": best_result(metrics),
        **extra,
    }
    if params.monte_carlo is not None and equity is not None:
        summary["monte_carlo"] = _bootstrap(equity, params.monte_carlo)
    return summary


def _kind(spec: BacktestSpec) -> str:
    return "sweep" if spec.grid else "single"


@job("signals.compute", params=SignalsJob, schedule=SIGNALS_SCHEDULE)
def signals_compute(ctx: JobContext, params: SignalsJob) -> dict[str, Any]:
    """Compute and store the latest targets of saved strategies (all, or the named one)."""
    names = None if params.strategy is None else [params.strategy]
    signals = compute_signals(ctx.database_url, names, timeout=ctx.settings.connect_timeout)
    ctx.invalidate("signals")
    strategies = signals["strategy"].n_unique() if not signals.is_empty() else 0
    return {"strategies": strategies, "signals": signals.height}
