"""Backtest benchmark: a grid sweep, RegimeLab side by side with vectorbt, in one run.

    uv run python bench/backtest.py [--symbols 1000] [--days 2520] [--quick] [--repeat 3]
                                    [--skip-vectorbt] [--profile] [--chunk-size 100]

SMA crossover, fast 10..50 x slow 100..200 (a 5 x 5 grid), on N symbols x D days of GBM
closes (seeded; 1,000 x 2,520 by default: 25,000 symbol-parameter backtests), 10 bps fees,
long/flat and all in, each symbol its own account. Figures are backtests per second, end
to end from prices in memory to metrics:

- RegimeLab: `run_backtest(bars, spec, keep_equity=False, keep_trades=False)` with
  `BacktestSpec(strategy="sma_crossover", grid=..., execution=Execution(fees_bps=10))`:
  targets, execution, trades and the full metrics set (total_return, max_drawdown, ...);
  and the same sweep through `run_sweep(executor="local", chunk_size=...)`, in-process
  passes over `--chunk-size` symbols at a time (0: skip), for its time and memory;
- vectorbt 1.2 (the optional `bench` dependency group): `vbt.MA.run` for the 5 + 5
  windows, crossover signals for the 25 pairs, `Portfolio.from_signals(fees=0.001)` over
  all 25 x N columns, then `total_return()` and `max_drawdown()`. Signals are shifted one
  bar, since RegimeLab fills a target decided at bar t's close at bar t+1's close.
  vectorbt runs its numba kernels on one core; Polars uses both.

Each side runs in its own spawned child process, so its peak RSS (`ru_maxrss`, which
includes the prices and interpreter) is its own: one warm-up on 2 symbols (numba
compiles, imports), then the best of `--repeat` timed runs. Every (symbol, parameter
set)'s total_return and max_drawdown are then asserted equal between the two (1e-6
absolute). `--profile` adds RegimeLab's stage timings (prepare, targets, execution,
trades, metrics; each stage collected on its own, so they add up to a little more than
the end-to-end figure) and vectorbt's.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import multiprocessing
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from engine.backtest.engine import (
    param_frame,
    periods_per_year,
    prepare,
    run_backtest,
    simulate_spec,
    target_frame,
)
from engine.backtest.metrics import backtest_metrics
from engine.backtest.spec import BacktestSpec, Execution
from engine.backtest.sweep import run_sweep
from engine.backtest.trades import trade_table

FAST: tuple[int, ...] = (10, 20, 30, 40, 50)
SLOW: tuple[int, ...] = (100, 125, 150, 175, 200)
FEES_BPS = 10.0
DRIFT, VOLATILITY = 0.0003, 0.012  # daily: about 7.5 % a year and 19 % annualized
TOLERANCE = 1e-6
SEED = 0


# --- data ---------------------------------------------------------------------------------


def gbm_closes(symbols: int, days: int, seed: int = SEED) -> np.ndarray:
    """(symbols, days) closes of independent geometric Brownian motions from 100."""
    rng = np.random.default_rng(seed)
    log_returns = rng.normal(DRIFT - VOLATILITY**2 / 2, VOLATILITY, (symbols, days))
    log_returns[:, 0] = 0.0
    return 100.0 * np.exp(np.cumsum(log_returns, axis=1))


def symbol_names(symbols: int) -> tuple[str, ...]:
    return tuple(f"SYN{i:04d}" for i in range(symbols))


def bars_frame(closes: np.ndarray) -> pl.DataFrame:
    """Canonical bars of `closes` on business days (open = high = low = close)."""
    n_symbols, n_days = closes.shape
    calendar = pl.date_range(date(2010, 1, 4), date(2010, 1, 4) + timedelta(days=n_days * 2))
    days = pl.select(calendar.alias("d")).filter(pl.col("d").dt.weekday() <= 5).head(n_days)
    ts = days["d"].cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    index = pl.Series(np.repeat(np.arange(n_symbols, dtype=np.uint32), n_days))
    close = closes.ravel()
    return pl.DataFrame(
        {
            "symbol": pl.Series(symbol_names(n_symbols)).gather(index),
            "ts": pl.concat([ts] * n_symbols),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.full(close.size, 1e6),
        }
    )


# --- RegimeLab ----------------------------------------------------------------------------


def regimelab_spec(symbols: tuple[str, ...]) -> BacktestSpec:
    return BacktestSpec(
        strategy="sma_crossover",
        symbols=symbols,
        grid={"fast": FAST, "slow": SLOW},
        execution=Execution(fees_bps=FEES_BPS),
    )


def regimelab_sweep(bars: pl.DataFrame, symbols: tuple[str, ...]) -> pl.DataFrame:
    """The metrics of every (parameter set, symbol): the timed call."""
    result = run_backtest(bars, regimelab_spec(symbols), keep_equity=False, keep_trades=False)
    return result.metrics


def regimelab_chunked(
    bars: pl.DataFrame, symbols: tuple[str, ...], chunk_size: int
) -> pl.DataFrame:
    """The same metrics from `run_sweep` in this process, `chunk_size` symbols a pass."""
    spec = regimelab_spec(symbols)
    return run_sweep(bars, spec, executor="local", chunk_size=chunk_size).metrics


def regimelab_results(metrics: pl.DataFrame) -> dict[str, np.ndarray]:
    """total_return and max_drawdown as (parameter pair, symbol) arrays, pairs in
    `itertools.product(FAST, SLOW)` order."""
    ordered = metrics.sort("fast", "slow", "symbol")
    pairs = len(FAST) * len(SLOW)
    return {
        name: ordered[name].to_numpy().reshape(pairs, -1)
        for name in ("total_return", "max_drawdown")
    }


def regimelab_stages(bars: pl.DataFrame, symbols: tuple[str, ...]) -> dict[str, float]:
    """Seconds of each stage of `run_backtest`, each collected on its own."""
    spec = regimelab_spec(symbols)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name] = now - started
        started = now

    param_sets = spec.param_sets()
    prepared = prepare(bars, spec).collect()
    lap("prepare (sort, bar numbers, benchmark returns)")
    targets, keys = target_frame(prepared.lazy(), spec, param_sets)
    targets = targets.collect()
    lap("targets (moving averages, 25 target columns)")
    frame = simulate_spec(targets.lazy(), spec, keys)
    lap("execution (simulate: equity, weight, fees, turnover, trade)")
    trades = trade_table(frame, keys)
    lap("trades (trade_table)")
    metrics = backtest_metrics(
        frame,
        keys,
        init_cash=spec.execution.init_cash,
        periods_per_year=periods_per_year(spec.interval),
        trades=trades,
    )
    lap("metrics (backtest_metrics)")
    param_frame(spec, keys, param_sets).join(metrics, on="key", how="right")
    lap("parameter columns")
    return seconds


def run_regimelab(
    symbols: int, days: int, repeat: int, profile: bool, chunk_size: int = 0
) -> dict[str, Any]:
    """In a child process: warm up, time the sweep (in one pass, or in chunks of
    `chunk_size` symbols), report results and peak RSS."""
    closes = gbm_closes(symbols, days)
    names = symbol_names(symbols)
    bars = bars_frame(closes)
    regimelab_sweep(bars.filter(pl.col("symbol").is_in(names[:2])), names[:2])  # warm-up
    rss_before = _peak_rss()
    if chunk_size:
        seconds, metrics = _best_of(lambda: regimelab_chunked(bars, names, chunk_size), repeat)
    else:
        seconds, metrics = _best_of(lambda: regimelab_sweep(bars, names), repeat)
    out: dict[str, Any] = {
        "seconds": seconds,
        "rss_before": rss_before,
        "rss_peak": _peak_rss(),
        "results": regimelab_results(metrics),
    }
    if profile and not chunk_size:
        out["stages"] = regimelab_stages(bars, names)
    return out


# --- vectorbt -----------------------------------------------------------------------------


def vectorbt_sweep(close: Any, stages: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """total_return and max_drawdown of the 25 pairs x symbols with vectorbt: the timed
    call. `close`: a (days x symbols) pandas DataFrame."""
    import vectorbt as vbt

    started = time.perf_counter()
    fast_ma = vbt.MA.run(close, window=list(FAST), short_name="fast").ma
    slow_ma = vbt.MA.run(close, window=list(SLOW), short_name="slow").ma
    ma_done = time.perf_counter()
    pairs = list(itertools.product(FAST, SLOW))
    fast = np.concatenate([fast_ma[f].to_numpy() for f, _ in pairs], axis=1)
    slow = np.concatenate([slow_ma[s].to_numpy() for _, s in pairs], axis=1)
    above = fast > slow  # False while either average is NaN (warm-up)
    was_above = np.zeros_like(above)
    was_above[1:] = above[:-1]
    # decided at bar t's close, filled at bar t+1: signals move one bar later
    entries = np.zeros_like(above)
    exits = np.zeros_like(above)
    entries[1:] = (above & ~was_above)[:-1]
    exits[1:] = (~above & was_above)[:-1]
    prices = np.tile(close.to_numpy(), len(pairs))
    signals_done = time.perf_counter()
    portfolio = vbt.Portfolio.from_signals(
        prices, entries, exits, fees=FEES_BPS / 10_000, freq="1D"
    )
    simulated = time.perf_counter()
    shape = (len(pairs), close.shape[1])
    results = {
        "total_return": np.asarray(portfolio.total_return()).reshape(shape),
        "max_drawdown": np.asarray(portfolio.max_drawdown()).reshape(shape),
    }
    if stages is not None:
        stages["moving averages (MA.run)"] = ma_done - started
        stages["crossover signals, tiled prices"] = signals_done - ma_done
        stages["Portfolio.from_signals"] = simulated - signals_done
        stages["total_return + max_drawdown"] = time.perf_counter() - simulated
    return results


def run_vectorbt(symbols: int, days: int, repeat: int, profile: bool) -> dict[str, Any]:
    """In a child process: warm up (numba compiles), time the sweep, report results."""
    import pandas as pd

    close = pd.DataFrame(gbm_closes(symbols, days).T, columns=list(symbol_names(symbols)))
    vectorbt_sweep(close.iloc[:, :2])  # warm-up
    rss_before = _peak_rss()
    best_stages: dict[str, float] = {}
    best = math.inf
    results: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        stages: dict[str, float] = {}
        started = time.perf_counter()
        results = vectorbt_sweep(close, stages)
        seconds = time.perf_counter() - started
        if seconds < best:
            best, best_stages = seconds, stages
    out: dict[str, Any] = {
        "seconds": best,
        "rss_before": rss_before,
        "rss_peak": _peak_rss(),
        "results": results,
    }
    if profile:
        out["stages"] = best_stages
    return out


# --- running and reporting ----------------------------------------------------------------


def _peak_rss() -> int:
    """Peak resident set size of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _best_of(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """`target(*args)` in a fresh spawned process (clean memory figures)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(target, *args).result()


def max_differences(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Max absolute difference of each metric; AssertionError past `TOLERANCE`."""
    differences = {}
    for name, mine in ours.items():
        if mine.shape != theirs[name].shape:
            raise AssertionError(f"{name}: shapes {mine.shape} and {theirs[name].shape}")
        differences[name] = float(np.max(np.abs(mine - theirs[name])))
        if not differences[name] <= TOLERANCE:  # NaN fails too
            raise AssertionError(f"{name} differs by {differences[name]:.3g} > {TOLERANCE}")
    return differences


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def report(
    symbols: int,
    days: int,
    repeat: int,
    ours: dict[str, Any],
    chunked: tuple[int, dict[str, Any]] | None,
    vbt: dict[str, Any] | None,
) -> None:
    backtests = len(FAST) * len(SLOW) * symbols
    print(
        f"\nSMA crossover, {len(FAST)} x {len(SLOW)} grid x {symbols:,} symbols x {days:,} days"
        f" = {backtests:,} backtests ({backtests * days / 1e6:,.1f} M bar-steps),"
        f" {FEES_BPS:g} bps fees, long/flat all in; best of {repeat}"
    )
    print("| implementation | backtests/s | seconds | peak RSS (before the sweep) | vs vectorbt |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [("RegimeLab run_backtest, one pass (full metrics)", ours)]
    if chunked is not None:
        size, side = chunked
        rows.append((f"RegimeLab run_sweep, local, {size}-symbol chunks", side))
    if vbt is not None:
        rows.append(("vectorbt 1.2 from_signals", vbt))
    for name, side in rows:
        ratio = "baseline" if side is vbt else ""
        if vbt is not None and side is not vbt:
            ratio = f"{vbt['seconds'] / side['seconds']:.2f}x"
        print(
            f"| {name} | {backtests / side['seconds']:,.0f} | {side['seconds']:.2f} |"
            f" {_gib(side['rss_peak'])} ({_gib(side['rss_before'])}) | {ratio} |"
        )
    if chunked is not None:
        max_differences(ours["results"], chunked[1]["results"])  # the same backtests
    if vbt is not None:
        differences = max_differences(ours["results"], vbt["results"])
        print(
            f"RegimeLab run_backtest vs vectorbt: {vbt['seconds'] / ours['seconds']:.2f}x"
            f" (goal >= 10x); max |difference| over {backtests:,} backtests: "
            + ", ".join(f"{name} {value:.1e}" for name, value in differences.items())
            + f" (tolerance {TOLERANCE:g})"
        )
    for name, side in rows:
        if "stages" in side:
            total = sum(side["stages"].values())
            print(f"\n| {name}: stage | seconds | share |")
            print("| --- | ---: | ---: |")
            for stage, seconds in side["stages"].items():
                print(f"| {stage} | {seconds:.2f} | {seconds / total:.0%} |")


def main() -> None:
    """Run both sides in child processes and print their figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--quick", action="store_true", help="100 symbols")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-vectorbt", action="store_true")
    parser.add_argument("--profile", action="store_true", help="stage timings")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=100,
        help="also time run_sweep in chunks of this many symbols (0: skip)",
    )
    args = parser.parse_args()
    symbols = 100 if args.quick else args.symbols
    if args.days <= max(SLOW):
        parser.error(f"--days must exceed the slowest window ({max(SLOW)})")
    run_vbt = not args.skip_vectorbt
    if run_vbt and importlib.util.find_spec("vectorbt") is None:
        print("vectorbt is not installed (uv sync --group bench): RegimeLab's figures only")
        run_vbt = False
    elif not run_vbt:
        print("vectorbt skipped (--skip-vectorbt): RegimeLab's figures only")
    ours = in_child(run_regimelab, symbols, args.days, args.repeat, args.profile)
    chunked = None
    if 0 < args.chunk_size < symbols:
        side = in_child(run_regimelab, symbols, args.days, args.repeat, False, args.chunk_size)
        chunked = (args.chunk_size, side)
    vbt = in_child(run_vectorbt, symbols, args.days, args.repeat, args.profile) if run_vbt else None
    report(symbols, args.days, args.repeat, ours, chunked, vbt)


if __name__ == "__main__":
    main()
