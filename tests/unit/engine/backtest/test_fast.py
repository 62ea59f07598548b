"""The metrics-only fast path (`fast.fast_metrics`, what `run_backtest` runs without
curves or trades) equals the reference path (`simulate` -> `trade_table` ->
`backtest_metrics`) metric by metric, null for null."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.backtest._kernels import sweep_metrics
from engine.backtest.engine import prepare, run_backtest, target_frame
from engine.backtest.fast import fast_metrics
from engine.backtest.metrics import METRICS
from engine.backtest.spec import BacktestSpec, Execution

START = datetime(2015, 1, 2, tzinfo=UTC)
RTOL, ATOL = 1e-9, 1e-12
# bars per symbol: long and short histories, one shorter than every warm-up (never
# trades under most strategies) and a single bar
LENGTHS = {"A": 420, "B": 260, "C": 9, "D": 1, "E": 333}


def _bars(lengths: dict[str, int], seed: int, spike: dict[str, int] | None = None) -> pl.DataFrame:
    """Random-walk bars; `spike`: symbol -> bar from which its price is tripled."""
    rng = np.random.default_rng(seed)
    parts = []
    for symbol, n in lengths.items():
        close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, n)))
        if spike and symbol in spike:
            close[spike[symbol] :] *= 3.0
        open_ = close * np.exp(rng.normal(0, 0.006, n))
        parts.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": [START + timedelta(days=i) for i in range(n)],
                    "open": open_,
                    "high": np.maximum(open_, close),
                    "low": np.minimum(open_, close),
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    return pl.concat(parts).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


COSTS = {"fees_bps": 10, "slippage_bps": 5}
CASES: dict[str, dict[str, Any]] = {
    "sma_long_short_close": {
        "strategy": "sma_crossover",
        "params": {"short": True},
        "grid": {"fast": [3, 5], "slow": [12, 20]},
        "execution": COSTS,
    },
    "sma_long_short_open_weekly_fraction": {
        "strategy": "sma_crossover",
        "params": {"short": True, "kind": "ema"},
        "grid": {"fast": [4], "slow": [15]},
        "execution": COSTS | {"price": "open", "rebalance": "weekly"},
        "sizing": {"fraction": 0.6},
    },
    "mean_reversion_open_monthly": {
        "strategy": "mean_reversion",
        "grid": {"window": [5, 10], "entry_z": [1.0, 1.5]},
        "execution": COSTS | {"price": "open", "rebalance": "monthly"},
    },
    "momentum_vol_target_leveraged_weekly": {
        "strategy": "momentum",
        "params": {"short": True},
        "grid": {"lookback": [5, 20]},
        "execution": COSTS | {"rebalance": "weekly"},
        "sizing": {"kind": "vol_target", "vol_target": 0.4, "vol_window": 6, "max_leverage": 3},
    },
    "buy_and_hold_weights_daily": {
        "strategy": "buy_and_hold",
        "grid": {"weight": [1.0, -0.5, 1.7]},
        "execution": COSTS | {"rebalance": "daily"},
    },
    "vol_target_open_fraction": {
        "strategy": "vol_target",
        "grid": {"vol_target": [0.1, 0.3], "window": [5]},
        "execution": COSTS | {"price": "open"},
        "sizing": {"fraction": 0.3},
    },
    "sma_no_costs_benchmark_symbol": {
        "strategy": "sma_crossover",
        "grid": {"fast": [2, 5], "slow": [10]},
        "benchmark": "E",  # joined on ts: null where E has no bar
    },
}


def _spec(case: dict[str, Any], symbols: list[str]) -> BacktestSpec:
    return BacktestSpec.parse(
        case | {"symbols": [s for s in symbols if s != case.get("benchmark")]}
    )


def assert_metrics_equal(fast: pl.DataFrame, reference: pl.DataFrame) -> None:
    """Same columns, dtypes and rows; every metric equal to RTOL/ATOL, nulls (and NaNs)
    in the same places."""
    assert fast.schema == reference.schema
    assert fast.select("key", "symbol").equals(reference.select("key", "symbol"))
    for name in reference.columns:
        ours, theirs = fast[name], reference[name]
        assert ours.is_null().equals(theirs.is_null()), name
        if ours.dtype == pl.Float64:
            np.testing.assert_allclose(
                ours.to_numpy(), theirs.to_numpy(), rtol=RTOL, atol=ATOL, err_msg=name
            )
        else:
            assert ours.equals(theirs), name


def _both(bars: pl.DataFrame, spec: BacktestSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    fast = run_backtest(bars, spec, keep_equity=False, keep_trades=False)
    reference = run_backtest(bars, spec, keep_equity=True)
    assert fast.equity is None and reference.equity is not None  # the paths differ
    return fast.metrics, reference.metrics


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_equals_the_reference(name: str, seed: int) -> None:
    bars = _bars(LENGTHS, seed)
    fast, reference = _both(bars, _spec(CASES[name], list(LENGTHS)))
    assert_metrics_equal(fast, reference)


def test_cases_cover_flips_idle_symbols_and_null_metrics() -> None:
    """The fixtures reach what they are meant to: a long -> short flip in one order, a
    symbol that never trades, nulls from one bar and from no closed trade."""
    bars = _bars(LENGTHS, 1)
    spec = _spec(CASES["sma_long_short_close"], list(LENGTHS))
    reference = run_backtest(bars, spec)
    assert reference.trades is not None
    trades = reference.trades.sort("key", "symbol", "entry_ts")
    following = pl.col("entry_ts").shift(-1).over("key", "symbol")
    flips = trades.filter(pl.col("exit_ts") == following)
    assert flips.height > 0
    assert set(flips["direction"].unique().to_list()) == {-1, 1}
    metrics = reference.metrics
    idle = metrics.filter(pl.col("symbol") == "C")
    assert (idle["orders"] == 0).all() and (idle["trades"] == 0).all()
    assert idle["win_rate"].is_null().all() and idle["profit_factor"].is_null().all()
    one_bar = metrics.filter(pl.col("symbol") == "D")
    assert one_bar["sharpe"].is_null().all() and one_bar["beta"].is_null().all()


def test_a_bust_ends_the_account_in_both_paths() -> None:
    """A 2x short through a tripling price: equity reaches 0 at the spike and the account
    is liquidated there (worth 0, no position, no orders from that bar on), in both paths;
    the symbols after it keep their own accounts."""
    bars = _bars({"A": 120, "BUST": 120, "Z": 120}, seed=3, spike={"BUST": 60})
    spec = BacktestSpec.parse(
        {
            "strategy": "buy_and_hold",
            "symbols": ["A", "BUST", "Z"],
            "grid": {"weight": [-2.0, 1.0]},
            "execution": COSTS | {"rebalance": "weekly"},
        }
    )
    fast, reference = _both(bars, spec)
    assert_metrics_equal(fast, reference)
    bust = fast.filter(key="p0", symbol="BUST").row(0, named=True)
    assert bust["total_return"] == -1.0 and bust["cagr"] == -1.0
    assert bust["max_drawdown"] == -1.0
    assert bust["trades"] == 1 and not np.isnan(bust["expectancy"])  # one losing short
    after_it = fast.filter(key="p0", symbol="Z").row(0, named=True)
    assert np.isfinite(after_it["total_return"]) and after_it["total_return"] > -1.0


def test_fast_metrics_checks_its_frame() -> None:
    bars = _bars({"A": 30, "B": 30}, seed=4)
    spec = _spec(CASES["sma_no_costs_benchmark_symbol"] | {"benchmark": None}, ["A", "B"])
    lf, keys = target_frame(prepare(bars, spec), spec, spec.param_sets())
    frame = lf.collect()
    assert fast_metrics(frame, keys, Execution(), periods_per_year=252).columns == [
        "key",
        "symbol",
        *METRICS,
    ]
    with pytest.raises(ValueError, match="at least one key"):
        fast_metrics(frame, [], Execution(), periods_per_year=252)
    with pytest.raises(ValueError, match=r"lacks column\(s\): target:p9"):
        fast_metrics(frame, ["p9"], Execution(), periods_per_year=252)
    with pytest.raises(ValueError, match="must be sorted"):
        fast_metrics(frame.sort("ts"), keys, Execution(), periods_per_year=252)


def test_every_call_reuses_one_compiled_kernel() -> None:
    """One key or many, nulls or none, one chunk or several, close or open: the kernel
    always gets the same array types (layout, writability), so numba compiles (or loads)
    it once."""
    bars = _bars({"A": 40, "B": 50}, seed=5)
    spec = _spec(CASES["sma_long_short_close"], ["A", "B"])
    lf, keys = target_frame(prepare(bars, spec), spec, spec.param_sets())
    frame = lf.collect()
    dense = frame.with_columns(pl.col(f"target:{k}").fill_null(0.5) for k in keys).rechunk()
    chunked = pl.concat([frame.head(45), frame.tail(-45)], rechunk=False)
    variants = [(frame, keys), (frame, keys[:1]), (chunked, keys), (dense, keys), (dense, keys[:1])]
    for variant, variant_keys in variants:
        for execution in (Execution(), Execution(price="open", rebalance="monthly")):
            fast_metrics(variant, variant_keys, execution, periods_per_year=252)
    assert len(sweep_metrics.signatures) == 1
