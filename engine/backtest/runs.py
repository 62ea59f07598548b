"""Backtests end to end against the database: load bars and causal regimes, run, store.

`run_stored_backtest` is what the CLI, the API jobs and the notebooks call: it records a
`backtest_runs` row with the exact spec, runs the backtest (a sweep over a pool or Ray
when the grid x universe is large), stores one result row per (parameter set, symbol)
and marks the run succeeded, or failed with the reason. `compute_signals` evaluates stored
strategies on the latest bars and upserts `signals` (the scheduler's job).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import polars as pl
import psycopg

from engine.backtest.engine import BacktestResult, run_backtest
from engine.backtest.signals import latest_targets
from engine.backtest.spec import BacktestSpec
from engine.backtest.sweep import Executor, as_backtest_result, run_sweep
from engine.backtest.walkforward import WalkForwardResult, WalkForwardSpec, walk_forward
from engine.errors import RegimeLabError
from engine.io.backtests import (
    create_backtest_run,
    finish_backtest_run,
    get_strategy_row,
    set_progress,
    upsert_strategy,
    write_backtest_results,
    write_signals,
)
from engine.io.bars import load_bars
from engine.io.db import connect
from engine.io.regimes import load_labels
from engine.schema import SYMBOL, TS
from engine.strategies.base import SpecError, get_strategy

__all__ = [
    "BacktestRunError",
    "compute_signals",
    "load_inputs",
    "run_stored_backtest",
    "run_stored_walk_forward",
    "save_strategy",
    "stored_spec",
]

Progress = Callable[[int, int, str], None]
WALK_FORWARD = "walk_forward"
SWEEP_THRESHOLD = 2_000
"""Parameter sets x symbols above which a run fans out as a sweep (no curves kept)."""


class BacktestRunError(RegimeLabError):
    """A stored backtest failed; the message says why and names the run."""

    def __init__(self, message: str, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


def _bounds(spec: BacktestSpec, lookback_days: int = 0) -> tuple[datetime | None, datetime | None]:
    start = end = None
    if spec.start is not None:
        start = datetime(spec.start.year, spec.start.month, spec.start.day, tzinfo=UTC)
        start -= timedelta(days=lookback_days)
    if spec.end is not None:
        end = datetime(spec.end.year, spec.end.month, spec.end.day, 23, 59, 59, tzinfo=UTC)
    return start, end


def load_inputs(
    conn: psycopg.Connection, spec: BacktestSpec, *, since: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The bars (universe, benchmark, regime reference) and filtered regime labels a spec
    reads. Bars before `spec.start` are not loaded: indicators warm up inside the range."""
    symbols = list(dict.fromkeys([*spec.symbols, *([spec.benchmark] if spec.benchmark else [])]))
    if spec.regimes is not None and spec.regimes.reference:
        symbols = list(dict.fromkeys([*symbols, spec.regimes.reference]))
    start, end = _bounds(spec)
    if since is not None:
        start = since if start is None else max(start, since)
    bars = load_bars(conn, symbols, start=start, end=end, interval=spec.interval)
    regimes = None
    if spec.regimes is not None:
        regimes = load_labels(conn, spec.regimes.model, symbols, kind="filtered")
    return bars, regimes


@contextlib.contextmanager
def _failing_run(conn: psycopg.Connection, run_id: int, what: str) -> Iterator[None]:
    """Mark the run failed with the reason if the block raises; name the run in the error."""
    try:
        yield
    except Exception as exc:
        finish_backtest_run(conn, run_id, status="failed", error=str(exc)[:2000])
        if isinstance(exc, SpecError):
            raise SpecError(f"run {run_id}: {exc}") from exc
        raise BacktestRunError(f"{what} run {run_id} failed: {exc}", run_id) from exc


def _kind(spec: BacktestSpec) -> str:
    return "sweep" if spec.grid else "single"


def run_stored_backtest(
    database_url: str,
    spec: BacktestSpec,
    *,
    executor: Executor = "auto",
    workers: int | None = None,
    keep_equity: bool | None = None,
    progress: Progress | None = None,
    timeout: float = 5.0,
    strategy_name: str | None = None,
    ray_address: str | None = None,
) -> tuple[int, BacktestResult]:
    """Run `spec` on stored data; store the run and its results; return (run id, result)."""
    get_strategy(spec.strategy)  # unknown names fail before a run row exists
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        strategy_id = None
        if strategy_name is not None:
            strategy_id = upsert_strategy(conn, strategy_name, spec.strategy, spec.to_builtins())
        run_id = create_backtest_run(
            conn,
            kind=_kind(spec),
            spec=spec.to_builtins(),
            symbols=spec.symbols,
            strategy_id=strategy_id,
        )
        with _failing_run(conn, run_id, "backtest"):
            bars, regimes = load_inputs(conn, spec)
            size = len(spec.param_sets()) * len(spec.symbols)
            if size > SWEEP_THRESHOLD and spec.portfolio is None:

                def report(done: int, total: int, label: str) -> None:
                    set_progress(conn, run_id, done / total)
                    if progress is not None:
                        progress(done, total, label)

                sweep = run_sweep(
                    bars,
                    spec,
                    regimes,
                    executor=executor,
                    workers=workers,
                    ray_address=ray_address,
                    progress=report,
                )
                result = as_backtest_result(spec, sweep)
            else:
                result = run_backtest(
                    bars, spec, regimes, keep_equity=True if keep_equity is None else keep_equity
                )
                if progress is not None:
                    progress(1, 1, spec.strategy)
            with conn.transaction():
                write_backtest_results(
                    conn,
                    run_id,
                    result.metrics,
                    params=[c for c in result.metrics.columns if c in ("params", *spec.grid)],
                    regime_metrics=result.regime_metrics,
                    equity=result.equity if size <= 200 else None,
                )
                finish_backtest_run(conn, run_id, status="succeeded")
    return run_id, result


def run_stored_walk_forward(
    database_url: str,
    spec: BacktestSpec,
    walk: WalkForwardSpec,
    *,
    progress: Progress | None = None,
    timeout: float = 5.0,
) -> tuple[int, WalkForwardResult]:
    """Walk-forward analysis of `spec` on stored data, stored as a `walk_forward` run: one
    result per symbol with the out-of-sample metrics, the chosen parameters per window
    (`params`) and the stitched out-of-sample equity curve."""
    get_strategy(spec.strategy)
    stored = {**spec.to_builtins(), WALK_FORWARD: msgspec.to_builtins(walk)}
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        run_id = create_backtest_run(conn, kind=WALK_FORWARD, spec=stored, symbols=spec.symbols)
        with _failing_run(conn, run_id, "walk-forward"):
            bars, regimes = load_inputs(conn, spec)
            result = walk_forward(bars, spec, walk, regimes, progress=progress)
            chosen: dict[str, list[Any]] = {}
            for symbol, params in result.windows.select(SYMBOL, "params").iter_rows():
                chosen.setdefault(symbol, []).append(msgspec.json.decode(params))
            choices = pl.DataFrame(
                {
                    SYMBOL: list(chosen),
                    "params": [msgspec.json.encode(v).decode() for v in chosen.values()],
                },
                schema={SYMBOL: pl.String, "params": pl.String},
            )
            metrics = result.metrics.join(choices, on=SYMBOL, how="left").with_columns(
                pl.lit("oos").alias("key")
            )
            curves = result.equity.select(pl.lit("oos").alias("key"), SYMBOL, TS, "equity")
            with conn.transaction():
                write_backtest_results(conn, run_id, metrics, equity=curves)
                finish_backtest_run(conn, run_id, status="succeeded")
    return run_id, result


def stored_spec(run: Mapping[str, Any]) -> tuple[BacktestSpec, WalkForwardSpec | None]:
    """The spec (and walk-forward schedule, for walk-forward runs) a stored run ran."""
    data = dict(run["spec"])
    walk = data.pop(WALK_FORWARD, None)
    spec = BacktestSpec.parse(data)
    if walk is None:
        return spec, None
    try:
        return spec, msgspec.convert(walk, WalkForwardSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"stored walk-forward schedule: {exc}") from None


def save_strategy(database_url: str, name: str, spec: BacktestSpec, *, timeout: float = 5.0) -> int:
    """Store `spec` under `name` (for live signals and the scheduler); returns its id."""
    if spec.grid:
        raise SpecError("a saved strategy needs one parameter set: drop the grid")
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        return upsert_strategy(conn, name, spec.strategy, spec.to_builtins())


def compute_signals(
    database_url: str,
    names: Sequence[str] | None = None,
    *,
    lookback_days: int = 3 * 366,
    timeout: float = 5.0,
) -> pl.DataFrame:
    """Latest targets of stored strategies (all, or `names`) on the newest bars; upserted
    into `signals` and returned (strategy, symbol, ts, target, regime, ...)."""
    frames: list[pl.DataFrame] = []
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        if names is None:
            names = [r[0] for r in conn.execute("SELECT name FROM strategies ORDER BY name")]
        for name in names:
            row = get_strategy_row(conn, name)
            if row is None:
                raise SpecError(f"no stored strategy named {name!r}")
            strategy_id, _, stored = row
            spec = msgspec.convert(stored, BacktestSpec, strict=False)
            spec = msgspec.structs.replace(spec, start=None, end=None)
            since = datetime.now(UTC) - timedelta(days=lookback_days)
            bars, regimes = load_inputs(conn, spec, since=since)
            if bars.is_empty():
                bars, regimes = load_inputs(conn, spec)  # old data: use what there is
            signals = latest_targets(bars, spec, regimes)
            with conn.transaction():
                write_signals(conn, strategy_id, signals)
            frames.append(signals.with_columns(pl.lit(name).alias("strategy")))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="vertical_relaxed")
