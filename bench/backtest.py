"""Backtest benchmark: a grid sweep, RegimeLab side by side with vectorbt, in one run.

    uv run python bench/backtest.py [--symbols 1000] [--days 2520] [--quick] [--repeat 3]
                                    [--skip-vectorbt] [--profile] [--chunk-size 100]
                                    [--no-reference]

SMA crossover, fast 10..50 x slow 100..200 (a 5 x 5 grid), on N symbols x D days of GBM
closes (seeded; 1,000 x 2,520 by default: 25,000 symbol-parameter backtests), 10 bps fees,
long/flat and all in, each symbol its own account. Figures are backtests per second, end
to end from prices in memory to metrics:

- RegimeLab: `run_backtest(bars, spec, keep_equity=False, keep_trades=False)` with
  `BacktestSpec(strategy="sma_crossover", grid=..., execution=Execution(fees_bps=10))`:
  targets, then the metrics-only fast path (`engine.backtest.fast`: one numba pass per
  account computing the full metrics set, trade statistics included); the same sweep
  through `run_sweep(executor="local", chunk_size=...)`, in-process passes over
  `--chunk-size` symbols at a time (0: skip), for its time and memory; and the Polars
  reference path the fast path is tested against (`simulate`, `trade_table`,
  `backtest_metrics`: `run_backtest(..., keep_trades=True)`; `--no-reference` skips it);
- vectorbt 1.2 (the optional `bench` dependency group): `vbt.MA.run` for the 5 + 5
  windows, crossover signals for the 25 pairs, `Portfolio.from_signals(fees=0.001)` over
  all 25 x N columns, then `total_return()` and `max_drawdown()`. Signals are shifted one
  bar, since RegimeLab fills a target decided at bar t's close at bar t+1's close.
  vectorbt runs its numba kernels on one core; Polars and our kernel use both. Timed warm
  (after a warm-up on 2 symbols) and cold: the first call in a fresh process with an
  empty numba cache, so its kernels compile inside the timed call (how the issue's
  baseline of ~570 backtests/s was measured).

Each side runs in its own spawned child process, so its peak RSS (`ru_maxrss`, which
includes the prices and interpreter) is its own: one warm-up on 2 symbols (numba
compiles or loads its cache, imports), then the best of `--repeat` timed runs. Our
kernel's compile time (empty numba cache) and cache-load time are measured in two more
child processes and printed on their own: `cache=True` makes compiling a one-time cost.
Every (symbol, parameter set)'s total_return and max_drawdown are then asserted equal
between the sides (1e-6 absolute), and the fast path's full metrics set against the
reference path's. `--profile` adds stage timings (each stage collected on its own, so they
add up to a little more than the end-to-end figure).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import multiprocessing
import os
import resource
import tempfile
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
from engine.backtest.fast import fast_metrics
from engine.backtest.metrics import METRICS, backtest_metrics
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


def regimelab_sweep(
    bars: pl.DataFrame, symbols: tuple[str, ...], reference: bool = False
) -> pl.DataFrame:
    """The metrics of every (parameter set, symbol): the timed call. `reference`: through
    the Polars reference path (asking for the trades takes run_backtest there)."""
    spec = regimelab_spec(symbols)
    result = run_backtest(bars, spec, keep_equity=False, keep_trades=reference)
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


def regimelab_stages(
    bars: pl.DataFrame, symbols: tuple[str, ...], reference: bool = False
) -> dict[str, float]:
    """Seconds of each stage of `run_backtest` (fast path, or the reference path), each
    collected on its own."""
    spec = regimelab_spec(symbols)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name] = now - started
        started = now

    param_sets = spec.param_sets()
    periods = periods_per_year(spec.interval)
    prepared = prepare(bars, spec).collect()
    lap("prepare (sort, bar numbers, benchmark returns)")
    targets, keys = target_frame(prepared.lazy(), spec, param_sets)
    targets = targets.collect()
    lap("targets (moving averages, 25 target columns)")
    if reference:
        frame = simulate_spec(targets.lazy(), spec, keys)
        lap("execution (simulate: equity, weight, fees, turnover, trade)")
        trades = trade_table(frame, keys)
        lap("trades (trade_table)")
        cash = spec.execution.init_cash
        metrics = backtest_metrics(
            frame, keys, init_cash=cash, periods_per_year=periods, trades=trades
        )
        lap("metrics (backtest_metrics)")
    else:
        metrics = fast_metrics(targets, keys, spec.execution, periods_per_year=periods)
        lap("execution, trades and metrics (fast_metrics: numba kernel)")
    param_frame(spec, keys, param_sets).join(metrics, on="key", how="right")
    lap("parameter columns")
    return seconds


def run_regimelab(
    symbols: int,
    days: int,
    repeat: int,
    profile: bool,
    chunk_size: int = 0,
    reference: bool = False,
) -> dict[str, Any]:
    """In a child process: warm up, time the sweep (in one pass, in chunks of
    `chunk_size` symbols, or through the reference path), report results and peak RSS."""
    closes = gbm_closes(symbols, days)
    names = symbol_names(symbols)
    bars = bars_frame(closes)
    warm_up = time.perf_counter()
    regimelab_sweep(bars.filter(pl.col("symbol").is_in(names[:2])), names[:2], reference)
    warm_up = time.perf_counter() - warm_up
    rss_before = _peak_rss()
    if chunk_size:
        seconds, metrics = _best_of(lambda: regimelab_chunked(bars, names, chunk_size), repeat)
    else:
        seconds, metrics = _best_of(lambda: regimelab_sweep(bars, names, reference), repeat)
    out: dict[str, Any] = {
        "seconds": seconds,
        "warm_up": warm_up,
        "rss_before": rss_before,
        "rss_peak": _peak_rss(),
        "results": regimelab_results(metrics),
        "metrics": metrics.sort("fast", "slow", "symbol").select("key", "symbol", *METRICS),
    }
    if profile and not chunk_size:
        out["stages"] = regimelab_stages(bars, names, reference)
    return out


def kernel_warm_up() -> float:
    """In a child process: seconds of the first fast-path call (2 symbols x 300 days):
    compiling our kernel, or loading it from numba's cache (`in_child(env=...)` picks the
    cache directory)."""
    names = symbol_names(2)
    bars = bars_frame(gbm_closes(2, 300))
    started = time.perf_counter()
    regimelab_sweep(bars, names)
    return time.perf_counter() - started


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


def run_vectorbt(
    symbols: int, days: int, repeat: int, profile: bool, cold: bool = False
) -> dict[str, Any]:
    """In a child process: warm up (numba compiles), time the sweep, report results.
    `cold`: no warm-up, one timed first call (run it with an empty numba cache, so
    vectorbt's kernels compile inside it)."""
    import pandas as pd

    close = pd.DataFrame(gbm_closes(symbols, days).T, columns=list(symbol_names(symbols)))
    if not cold:
        vectorbt_sweep(close.iloc[:, :2])  # warm-up
    rss_before = _peak_rss()
    best_stages: dict[str, float] = {}
    best = math.inf
    results: dict[str, np.ndarray] = {}
    for _ in range(1 if cold else repeat):
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


def in_child(target: Callable[..., Any], *args: Any, env: dict[str, str] | None = None) -> Any:
    """`target(*args)` in a fresh spawned process (clean memory figures), with `env` added
    to its environment."""
    context = multiprocessing.get_context("spawn")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(target, *args).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def empty_numba_cache() -> dict[str, str]:
    """Environment for a child process whose numba cache starts empty."""
    return {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="bench-numba-")}


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


def metric_differences(ours: pl.DataFrame, reference: pl.DataFrame) -> float:
    """Max |difference| / max(1, |reference|) over every metric and row (NaN if a null or
    NaN is not matched); AssertionError past 1e-9."""
    if not ours.select("key", "symbol").equals(reference.select("key", "symbol")):
        raise AssertionError("fast and reference paths: different rows")
    worst = 0.0
    for name in METRICS:
        mine, theirs = ours[name], reference[name]
        if not mine.is_null().equals(theirs.is_null()):
            raise AssertionError(f"{name}: nulls differ between the fast and reference paths")
        if mine.dtype != pl.Float64:
            if not mine.equals(theirs):
                raise AssertionError(f"{name} differs between the fast and reference paths")
            continue
        a, b = mine.drop_nulls().to_numpy(), theirs.drop_nulls().to_numpy()
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"{name}: NaNs differ between the fast and reference paths")
        finite = ~np.isnan(b)
        scaled = np.abs(a - b)[finite] / np.maximum(1.0, np.abs(b[finite]))
        worst = max(worst, float(scaled.max(initial=0.0)))
    if not worst <= 1e-9:
        raise AssertionError(f"fast and reference paths differ by {worst:.3g} (scaled)")
    return worst


def _ratio(side: dict[str, Any], base: dict[str, Any] | None) -> str:
    """How many times faster `side` ran than `base`."""
    if base is None:
        return ""
    return "baseline" if side is base else f"{base['seconds'] / side['seconds']:.2f}x"


def report(
    symbols: int,
    days: int,
    repeat: int,
    sides: dict[str, Any],
    kernel_seconds: tuple[float, float],
) -> None:
    """The figures table, agreement checks and stage tables. `sides`: fast, chunked,
    reference, vbt, vbt_cold (None: not run); `kernel_seconds`: our kernel's compile and
    cache-load warm-up calls."""
    backtests = len(FAST) * len(SLOW) * symbols
    ours, chunked, reference = sides["fast"], sides["chunked"], sides["reference"]
    vbt, vbt_cold = sides["vbt"], sides["vbt_cold"]
    assert ours is not None
    print(
        f"\nSMA crossover, {len(FAST)} x {len(SLOW)} grid x {symbols:,} symbols x {days:,} days"
        f" = {backtests:,} backtests ({backtests * days / 1e6:,.1f} M bar-steps),"
        f" {FEES_BPS:g} bps fees, long/flat all in; best of {repeat}"
    )
    print(
        "| implementation | backtests/s | seconds | peak RSS (before the sweep)"
        " | vs vectorbt warm | vs vectorbt cold |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {
        "fast": "RegimeLab run_backtest, metrics only (fast path: numba kernel)",
        "chunked": f"RegimeLab run_sweep, local, {sides['chunk_size']}-symbol chunks (fast path)",
        "reference": "RegimeLab run_backtest, Polars reference path (simulate, trades, metrics)",
        "vbt": "vectorbt 1.2 from_signals, warm (after a warm-up)",
        "vbt_cold": "vectorbt 1.2 from_signals, cold (first call, empty numba cache)",
    }
    for kind, name in names.items():
        side = sides[kind]
        if side is None:
            continue
        ratios = [_ratio(side, base) for base in (vbt, vbt_cold)]
        print(
            f"| {name} | {backtests / side['seconds']:,.0f} | {side['seconds']:.2f} |"
            f" {_gib(side['rss_peak'])} ({_gib(side['rss_before'])}) | {' | '.join(ratios)} |"
        )
    compile_seconds, load_seconds = kernel_seconds
    print(
        f"Our kernel's first call (2 symbols): {compile_seconds:.1f} s with an empty numba"
        f" cache (compiling), {load_seconds:.1f} s loading it from the cache (cache=True:"
        f" compiling is a one-time cost); warm-up call in the timed process"
        f" {ours['warm_up']:.1f} s. None of it is in the timed figures."
    )
    if chunked is not None:
        max_differences(ours["results"], chunked["results"])  # the same backtests
    if reference is not None:
        scaled = metric_differences(ours["metrics"], reference["metrics"])
        print(
            f"Fast path vs reference path: all {len(METRICS)} metrics x {backtests:,}: max"
            f" |difference| / max(1, |value|) {scaled:.1e}, nulls and NaNs in the same places"
        )
    for base, label in ((vbt, "warm"), (vbt_cold, "cold")):
        if base is None:
            continue
        differences = max_differences(ours["results"], base["results"])
        if reference is not None:
            max_differences(reference["results"], base["results"])
        print(
            f"RegimeLab run_backtest vs vectorbt {label}: {base['seconds'] / ours['seconds']:.2f}x"
            f" (goal >= 10x); max |difference| over {backtests:,} backtests: "
            + ", ".join(f"{name} {value:.1e}" for name, value in differences.items())
            + f" (tolerance {TOLERANCE:g})"
        )
    for kind, name in names.items():
        side = sides[kind]
        if side is not None and "stages" in side:
            total = sum(side["stages"].values())
            print(f"\n| {name}: stage | seconds | share |")
            print("| --- | ---: | ---: |")
            for stage, seconds in side["stages"].items():
                print(f"| {stage} | {seconds:.2f} | {seconds / total:.0%} |")


def main() -> None:
    """Run every side in child processes and print their figures side by side."""
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
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the Polars reference path"
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
    cache = empty_numba_cache()
    kernel_seconds = (in_child(kernel_warm_up, env=cache), in_child(kernel_warm_up, env=cache))
    size, days, repeat = symbols, args.days, args.repeat
    sides: dict[str, Any] = {"chunk_size": args.chunk_size}
    sides["fast"] = in_child(run_regimelab, size, days, repeat, args.profile)
    sides["chunked"] = None
    if 0 < args.chunk_size < symbols:
        sides["chunked"] = in_child(run_regimelab, size, days, repeat, False, args.chunk_size)
    sides["reference"] = None
    if not args.no_reference:
        sides["reference"] = in_child(run_regimelab, size, days, repeat, args.profile, 0, True)
    sides["vbt"] = sides["vbt_cold"] = None
    if run_vbt:
        sides["vbt"] = in_child(run_vectorbt, size, days, repeat, args.profile)
        cold = empty_numba_cache()
        sides["vbt_cold"] = in_child(run_vectorbt, size, days, 1, False, True, env=cold)
    report(symbols, args.days, args.repeat, sides, kernel_seconds)


if __name__ == "__main__":
    main()
