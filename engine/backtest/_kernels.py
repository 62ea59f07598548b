"""Numba kernel of the metrics-only fast path: every (symbol, key) account simulated and
measured without per-bar columns of the whole frame.

Each account reads its bars once, simulating into a scratch of its own (equity, weight,
turnover, fees and return per bar: a few pages, cache-resident), then measures from it.
The account follows `execution.simulate` step for step (same closed form, same order of
floating-point operations), and the statistics follow `metrics.backtest_metrics` and
`trades.trade_table`, including Polars' conventions where they differ from IEEE: a NaN
compares greater than any number (so `NaN > 0` holds and `NaN < 0` does not), and a
`pl.when(...)` that does not hold gives null, which the kernel reports in a separate
`missing` flag so that a NaN value stays NaN. `fast.fast_metrics` is the caller."""

# Kernels take their arrays positionally: numba compiles plain positional signatures best.
# ruff: noqa: PLR0917

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from engine.backtest.metrics import METRICS

__all__ = ["COUNT_METRICS", "FLOAT_METRICS", "sweep_metrics"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
_Function = TypeVar("_Function", bound=Callable[..., Any])

COUNT_METRICS: Final = ("max_drawdown_duration", "orders", "trades")
"""Columns of the kernel's `counts` output."""
FLOAT_METRICS: Final = tuple(
    m for m in METRICS if m not in COUNT_METRICS and m not in ("bars", "start", "end")
)
"""Columns of the kernel's `values` (and `missing`) output, per (key, symbol) row: the
float metrics of `metrics.METRICS`, in its order."""

# numba freezes module-level integers into the compiled code
_TOTAL_RETURN: Final = FLOAT_METRICS.index("total_return")
_CAGR: Final = FLOAT_METRICS.index("cagr")
_ANNUAL_RETURN: Final = FLOAT_METRICS.index("annual_return")
_ANNUAL_VOLATILITY: Final = FLOAT_METRICS.index("annual_volatility")
_SHARPE: Final = FLOAT_METRICS.index("sharpe")
_SORTINO: Final = FLOAT_METRICS.index("sortino")
_CALMAR: Final = FLOAT_METRICS.index("calmar")
_MAX_DRAWDOWN: Final = FLOAT_METRICS.index("max_drawdown")
_EXPOSURE: Final = FLOAT_METRICS.index("exposure")
_TURNOVER: Final = FLOAT_METRICS.index("turnover")
_TOTAL_FEES: Final = FLOAT_METRICS.index("total_fees")
_WIN_RATE: Final = FLOAT_METRICS.index("win_rate")
_PROFIT_FACTOR: Final = FLOAT_METRICS.index("profit_factor")
_EXPECTANCY: Final = FLOAT_METRICS.index("expectancy")
_AVG_TRADE_RETURN: Final = FLOAT_METRICS.index("avg_trade_return")
_BENCHMARK_RETURN: Final = FLOAT_METRICS.index("benchmark_return")
_ALPHA: Final = FLOAT_METRICS.index("alpha")
_BETA: Final = FLOAT_METRICS.index("beta")
_DURATION: Final = COUNT_METRICS.index("max_drawdown_duration")
_ORDERS: Final = COUNT_METRICS.index("orders")
_TRADES: Final = COUNT_METRICS.index("trades")

# per-symbol benchmark statistics (shared by every key)
_BENCH_GROWTH, _BENCH_MEAN, _BENCH_VAR = 0, 1, 2
_COSTS: Final = ("buy_cost", "sell_cost", "fee", "slippage")
"""The kernel's cost vector, in order."""


def _kernel(*, parallel: bool = False) -> Callable[[_Function], _Function]:
    """A decorator compiling a kernel with numba, typed. On-disk cache, GIL released;
    numpy's error model, so x / 0 is inf or NaN (as in Polars), never an exception."""
    compile_ = njit(parallel=parallel, cache=True, nogil=True, error_model="numpy")
    return cast(Callable[[_Function], _Function], compile_)


@_kernel()
def _above_zero(value: float) -> bool:
    """Polars' `value > 0`: NaN sorts above every number."""
    return value > 0.0 or math.isnan(value)


@_kernel()
def _compensated_sum(values: FloatArray, lo: int, hi: int) -> float:
    """Sum of values[lo:hi], Neumaier-compensated (as accurate as Polars' sums)."""
    total, carry = 0.0, 0.0
    for i in range(lo, hi):
        v = values[i]
        t = total + v
        if abs(total) >= abs(v):
            carry += (total - t) + v
        else:
            carry += (v - t) + total
        total = t
    return total + carry


@_kernel()
def _bench_stats(bench: FloatArray, lo: int, hi: int, out: FloatArray) -> None:
    """prod(1 + b), mean(b) and var(b) (ddof 1, two-pass; NaN for one bar) of a symbol."""
    n = hi - lo
    growth = 1.0
    for t in range(lo, hi):
        growth *= 1.0 + bench[t]
    mean = _compensated_sum(bench, lo, hi) / n
    squares = 0.0
    for t in range(lo, hi):
        squares += (bench[t] - mean) * (bench[t] - mean)
    out[_BENCH_GROWTH] = growth
    out[_BENCH_MEAN] = mean
    out[_BENCH_VAR] = squares / (n - 1) if n > 1 else np.nan


@_kernel()
def _order(
    held: float, moved: float, w: float, buy_cost: float, sell_cost: float
) -> tuple[float, float, float, bool]:
    """An order to weight `w` after a segment held at weight `held` while the price moved
    by `moved`: (growth E- / previous E+, drifted weight, rho = E+ / E-, buying), as
    `execution._order_values`; growth <= 0 is a bust."""
    growth = 1.0 + held * (moved - 1.0)
    drift = 0.0 if growth <= 0.0 else held * moved / growth
    buying = w > drift
    if buying:
        rho = (1.0 + buy_cost * drift) / (1.0 + buy_cost * w)
    else:
        rho = (1.0 - sell_cost * drift) / (1.0 - sell_cost * w)
    return growth, drift, rho, buying


@_kernel()
def _simulate(
    price: FloatArray,
    close: FloatArray,
    target: FloatArray,
    rebalance: BoolArray,
    lo: int,
    costs: FloatArray,
    init_cash: float,
    equity: FloatArray,
    weight: FloatArray,
    turnover: FloatArray,
    fees: FloatArray,
) -> None:
    """One account's equity and weight at each close, and turnover and fees per bar, as
    `execution.simulate` (bars lo, lo + 1, ...; `target` NaN = flat, executed a bar
    later; `costs`: `_COSTS`)."""
    buy_cost, sell_cost, fee, slippage = costs[0], costs[1], costs[2], costs[3]
    seg_w, seg_x, log_growth, after = 0.0, 1.0, 0.0, init_cash
    liquidated = False
    for i in range(equity.shape[0]):
        t = lo + i
        w = 0.0
        if i > 0 and not math.isnan(target[t - 1]):
            w = target[t - 1]
        turnover[i], fees[i] = 0.0, 0.0
        if i == 0 or w != seg_w or (rebalance[t] and w != 0.0):
            held, moved = (0.0, 1.0) if i == 0 else (seg_w, price[t] / seg_x)
            growth, drift, rho, buying = _order(held, moved, w, buy_cost, sell_cost)
            # E+ as init_cash times the product of the factors so far, in logs
            log_growth = -np.inf if growth <= 0.0 else log_growth + np.log(growth * rho)
            after = np.exp(log_growth) * init_cash
            turnover[i] = abs(w * rho - drift)
            slipped = (1.0 + slippage) if buying else (1.0 - slippage)
            fees[i] = after / rho * (fee * turnover[i] * slipped)
            seg_w, seg_x = w, price[t]
        ratio = 1.0 if w == 0.0 else close[t] / seg_x
        growth_now = 1.0 + w * (ratio - 1.0)
        equity[i] = after * growth_now
        weight[i] = 0.0 if growth_now == 0.0 else w * ratio / growth_now
        if liquidated or equity[i] <= 0.0:  # as execution._liquidated: worth 0 from here on
            liquidated = True
            equity[i], weight[i], turnover[i], fees[i] = 0.0, 0.0, 0.0, 0.0


@_kernel()
def _curve_stats(
    equity: FloatArray, weight: FloatArray, init_cash: float, returns: FloatArray
) -> tuple[float, int, float, int]:
    """Each bar's return (into `returns`) and, from the curve: (worst equity / running
    peak, longest drawdown in bars, sum of squared negative returns, bars entered with a
    position), as `metrics._returns`, `_curves` and `_longest_drawdown`."""
    running_max, worst, last_peak, longest = -np.inf, np.inf, -1, 0
    downside_sum, held_bars = 0.0, 0
    before, held_before = init_cash, 0.0
    n = equity.shape[0]
    for i in range(n):
        r = 0.0 if before == 0.0 else equity[i] / before - 1.0
        returns[i] = r
        downside = 0.0 if r > 0.0 else r
        downside_sum += downside * downside
        if held_before != 0.0:
            held_bars += 1
        curve = equity[i] / init_cash
        # comparisons, not max/min: a NaN is skipped, as by Polars' cum_max and min
        if curve > running_max:  # noqa: PLR1730
            running_max = curve
        peak = max(running_max, 1.0)
        if curve / peak < worst:  # noqa: PLR1730
            worst = curve / peak
        if curve >= peak or math.isnan(curve):  # a bar at the peak (Polars: NaN >= x)
            longest = max(longest, i - last_peak)
            last_peak = i
        before, held_before = equity[i], weight[i]
    duration = max(longest if longest > 1 else 0, n - 1 - last_peak)
    return worst, duration, downside_sum, held_bars


@_kernel()
def _trade_stats(
    equity: FloatArray,
    weight: FloatArray,
    turnover: FloatArray,
    fees: FloatArray,
    values: FloatArray,
    missing: BoolArray,
    counts: IntArray,
) -> None:
    """Round trips (`trades.trade_table`: runs of one sign of the weight, a flip's costs
    split by traded value) and their statistics (`metrics._trade_stats`)."""
    trades, closed, wins = 0, 0, 0
    gross_profit, gross_loss, pnl_sum, return_sum, entry_equity = 0.0, 0.0, 0.0, 0.0, 0.0
    side_before = 0
    n = equity.shape[0]
    for i in range(n):
        side = 1 if weight[i] > 0.0 else (-1 if weight[i] < 0.0 else 0)
        changed = side != side_before
        if changed or (i == n - 1 and side != 0):
            between = equity[i]  # the equity between the legs of a flip
            if _above_zero(turnover[i]):
                between += (
                    fees[i] * abs(weight[i]) * equity[i] / (turnover[i] * (equity[i] + fees[i]))
                )
            if changed and side_before != 0:  # the held trade exits
                exit_equity = equity[i] if side == 0 else between
                pnl = exit_equity - entry_equity
                closed += 1
                pnl_sum += pnl
                return_sum += exit_equity / entry_equity - 1.0
                if _above_zero(pnl):
                    wins += 1
                    gross_profit += pnl
                if pnl < 0.0:
                    gross_loss += pnl
            if changed and side != 0:  # a trade enters
                trades += 1
                entry_equity = between
                if side_before == 0:
                    entry_equity = equity[i - 1] if i > 0 else equity[i] + fees[i]
        side_before = side
    counts[_TRADES] = trades
    values[_WIN_RATE] = wins / closed if closed > 0 else np.nan
    values[_EXPECTANCY] = pnl_sum / closed if closed > 0 else np.nan
    values[_AVG_TRADE_RETURN] = return_sum / closed if closed > 0 else np.nan
    missing[_WIN_RATE] = missing[_EXPECTANCY] = missing[_AVG_TRADE_RETURN] = closed == 0
    values[_PROFIT_FACTOR] = gross_profit / -gross_loss if gross_loss < 0.0 else np.nan
    missing[_PROFIT_FACTOR] = not gross_loss < 0.0


@_kernel()
def _cost_stats(
    turnover: FloatArray, fees: FloatArray, periods: float, values: FloatArray, counts: IntArray
) -> None:
    """Annualized turnover, total fees and fills (bars with turnover > 0)."""
    orders = 0
    for i in range(turnover.shape[0]):
        if _above_zero(turnover[i]):
            orders += 1
    counts[_ORDERS] = orders
    values[_TURNOVER] = turnover.sum() * periods / turnover.shape[0]
    values[_TOTAL_FEES] = fees.sum()


@_kernel()
def _account(
    price: FloatArray,
    close: FloatArray,
    bench: FloatArray,
    target: FloatArray,
    rebalance: BoolArray,
    lo: int,
    hi: int,
    bench_stats: FloatArray,
    has_bench: bool,
    costs: FloatArray,
    init_cash: float,
    periods: float,
    values: FloatArray,
    missing: BoolArray,
    counts: IntArray,
) -> None:
    """Simulate one (symbol, key) account over bars lo..hi-1 and write its metrics."""
    n = hi - lo
    scratch = np.empty((5, n))
    equity, weight, turnover, fees, returns = (
        scratch[0],
        scratch[1],
        scratch[2],
        scratch[3],
        scratch[4],
    )
    _simulate(price, close, target, rebalance, lo, costs, init_cash, equity, weight, turnover, fees)
    worst, duration, downside_sum, held_bars = _curve_stats(equity, weight, init_cash, returns)
    counts[_DURATION] = duration
    values[_EXPOSURE] = held_bars / n
    _trade_stats(equity, weight, turnover, fees, values, missing, counts)
    _cost_stats(turnover, fees, periods, values, counts)
    growth = equity[n - 1] / init_cash
    _finish(
        returns,
        bench[lo:hi],
        bench_stats,
        has_bench,
        periods,
        growth,
        worst,
        downside_sum / n,
        values,
        missing,
    )


@_kernel()
def _finish(
    returns: FloatArray,
    bench: FloatArray,
    bench_stats: FloatArray,
    has_bench: bool,
    periods: float,
    growth: float,
    worst: float,
    downside: float,
    values: FloatArray,
    missing: BoolArray,
) -> None:
    """The return, risk and benchmark metrics of one account, as `metrics._finish`:
    `growth` final equity / init_cash, `worst` the lowest equity / running peak,
    `downside` the mean squared negative return."""
    n = returns.shape[0]
    mean = _compensated_sum(returns, 0, n) / n
    squares, products = 0.0, 0.0
    bench_mean = bench_stats[_BENCH_MEAN]
    for i in range(n):  # two-pass (co)variance, as accurate as Polars' var
        deviation = returns[i] - mean
        squares += deviation * deviation
        products += deviation * (bench[i] - bench_mean)
    std = math.sqrt(squares / (n - 1)) if n > 1 else np.nan
    cagr = growth ** (periods / n) - 1.0
    drawdown = worst - 1.0 if worst != np.inf else np.nan
    sqrt_p = math.sqrt(periods)

    values[_TOTAL_RETURN] = growth - 1.0
    values[_CAGR] = cagr
    values[_ANNUAL_RETURN] = mean * periods
    values[_ANNUAL_VOLATILITY] = std * sqrt_p
    missing[_ANNUAL_VOLATILITY] = n < 2
    values[_SHARPE] = mean / std * sqrt_p
    missing[_SHARPE] = n < 2 or not _above_zero(std)
    values[_SORTINO] = mean / math.sqrt(downside) * sqrt_p
    missing[_SORTINO] = not _above_zero(downside)
    values[_CALMAR] = cagr / abs(drawdown)
    missing[_CALMAR] = not drawdown < 0.0
    values[_MAX_DRAWDOWN] = drawdown

    bench_var = bench_stats[_BENCH_VAR]
    beta_defined = has_bench and n > 1 and _above_zero(bench_var)
    beta = products / (n - 1) / bench_var if beta_defined else np.nan
    values[_BENCHMARK_RETURN] = bench_stats[_BENCH_GROWTH] - 1.0
    values[_BETA] = beta
    values[_ALPHA] = (mean - beta * bench_mean) * periods
    missing[_BENCHMARK_RETURN] = not has_bench
    missing[_BETA] = missing[_ALPHA] = not beta_defined


@_kernel(parallel=True)
def sweep_metrics(
    price: FloatArray,
    close: FloatArray,
    bench: FloatArray,
    offsets: IntArray,
    targets: FloatArray,
    rebalance: BoolArray,
    has_bench: bool,
    fee: float,
    slippage: float,
    init_cash: float,
    periods: float,
    values: FloatArray,
    missing: BoolArray,
    counts: IntArray,
) -> None:
    """Metrics of every (key, symbol) account of one sorted frame, in parallel.

    price, close, bench (0 where null), rebalance: per row. offsets: each symbol's first
    row, then the row count. targets: (keys, rows), NaN = flat. Outputs, one row per
    (key, symbol), keys outer (`backtest_metrics`' row order): values and missing
    (n_pairs, len(FLOAT_METRICS)), counts (n_pairs, len(COUNT_METRICS))."""
    symbols = offsets.shape[0] - 1
    keys = targets.shape[0]
    # `_COSTS`: per unit of traded value, fee and slippage together (as
    # `execution._cost_rates`), then the fee rate and the slippage
    costs = np.array(
        [(1.0 + slippage) * (1.0 + fee) - 1.0, 1.0 - (1.0 - slippage) * (1.0 - fee), fee, slippage]
    )
    bench_stats = np.empty((symbols, 3))
    for s in prange(symbols):
        _bench_stats(bench, offsets[s], offsets[s + 1], bench_stats[s])
    for pair in prange(symbols * keys):
        key, s = pair // symbols, pair % symbols
        _account(
            price,
            close,
            bench,
            targets[key],
            rebalance,
            offsets[s],
            offsets[s + 1],
            bench_stats[s],
            has_bench,
            costs,
            init_cash,
            periods,
            values[pair],
            missing[pair],
            counts[pair],
        )
