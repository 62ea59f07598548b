"""Walk-forward windows, parameter choice on planted data, and the stitched OOS curve
against a literal account simulation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.backtest.engine import prepare, target_frame
from engine.backtest.execution import column
from engine.backtest.metrics import METRICS, backtest_metrics
from engine.backtest.spec import BacktestSpec
from engine.backtest.walkforward import (
    OBJECTIVES,
    WalkForwardResult,
    WalkForwardSpec,
    Window,
    walk_forward,
    windows,
)
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.strategies.base import SpecError
from tests.unit.engine.backtest.oracle import account

START = datetime(2010, 1, 4, tzinfo=UTC)


def _business_days(n: int) -> pl.Series:
    days = pl.datetime_range(
        START, START + timedelta(days=2 * n), "1d", eager=True, time_zone="UTC"
    )
    return days.filter(days.dt.weekday() <= 5).head(n).alias("ts")


def _positions(ts: pl.Series, cuts: list[Window]) -> list[tuple[int, int, int, int]]:
    where = {value: i for i, value in enumerate(ts.to_list())}
    return [
        (where[w.train_start], where[w.train_end], where[w.test_start], where[w.test_end])
        for w in cuts
    ]


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
def test_test_windows_tile_ten_years_without_overlap(mode: str) -> None:
    ts = _business_days(2520)
    cuts = windows(ts, WalkForwardSpec(train=504, test=126, mode=mode))  # type: ignore[arg-type]
    spans = _positions(ts, cuts)
    assert len(cuts) == 16
    assert [w.index for w in cuts] == list(range(16))
    assert spans[0][2] == 504
    assert spans[-1][3] == 2519
    for (_, _, _, end), (_, _, start, _) in pairwise(spans):
        assert start == end + 1  # contiguous, no overlap
    for train_start, train_end, test_start, test_end in spans:
        assert train_end == test_start - 1  # trained strictly before it trades
        assert test_end - test_start + 1 == 126
        assert train_start == (0 if mode == "anchored" else test_start - 504)
    assert sum(end - start + 1 for _, _, start, end in spans) == 2520 - 504


def test_the_last_window_may_be_shorter() -> None:
    ts = _business_days(2520)
    spans = _positions(ts, windows(ts, WalkForwardSpec(train=500, test=126)))
    assert len(spans) == 17
    assert spans[-1][3] - spans[-1][2] + 1 == 2020 - 16 * 126
    assert spans[-1][3] == 2519


def test_a_step_longer_than_the_test_leaves_gaps_but_no_overlap() -> None:
    ts = _business_days(2520)
    spans = _positions(ts, windows(ts, WalkForwardSpec(train=252, test=100, step=150)))
    starts = [start for _, _, start, _ in spans]
    assert starts == list(range(252, 2520, 150))
    for (_, _, _, end), (_, _, start, _) in pairwise(spans):
        assert start == end + 51
    assert all(train_end < test_start for _, train_end, test_start, _ in spans)
    assert all(train_end - train_start + 1 == 252 for train_start, train_end, _, _ in spans)


def test_too_few_bars_are_rejected() -> None:
    spec = WalkForwardSpec(train=100, test=10)
    with pytest.raises(SpecError, match="more than train=100"):
        windows(_business_days(100), spec)
    (only,) = windows(_business_days(101), spec)
    assert only.test_start == only.test_end
    with pytest.raises(SpecError, match="sorted and unique"):
        windows(_business_days(200).reverse(), spec)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"train": 19}, "train"),
        ({"test": 0}, "test"),
        ({"test": 50, "step": 49}, "never overlap"),
        ({"metric": "no_such_metric"}, "unknown metric"),
        ({"metric": "annual_volatility"}, "more is not better"),
        ({"metric": "max_drawdown_duration"}, "more is not better"),
        ({"mode": "expanding"}, "mode"),
        ({"select": "best"}, "select"),
    ],
)
def test_bad_walk_forward_specs_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        WalkForwardSpec(**options)


def test_objectives_are_metrics_and_drawdown_is_one() -> None:
    assert set(OBJECTIVES) <= set(METRICS)
    assert WalkForwardSpec(metric="max_drawdown").metric == "max_drawdown"
    assert WalkForwardSpec(test=50).stride == 50
    assert WalkForwardSpec(test=50, step=70).stride == 70


def _bars(closes: dict[str, np.ndarray]) -> pl.DataFrame:
    parts = []
    for symbol, close in closes.items():
        parts.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": _business_days(len(close)),
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    return pl.concat(parts)


def _dips(n: int) -> np.ndarray:
    """An uptrend with a deep dip every 40 bars, recovered over the next 5 bars: fast
    crossovers sell the dips and buy back higher; only the slowest one holds through."""
    rng = np.random.default_rng(0)
    returns = 0.003 + rng.normal(0, 0.002, n)
    for start in range(30, n, 40):
        returns[start : start + 5] -= 0.08
        returns[start + 5 : start + 10] += 0.08
    return 100 * np.exp(np.cumsum(returns))


def _swings(n: int) -> np.ndarray:
    """60 bars up 1.2% a day, 60 bars down: the fastest crossover rides the swings."""
    rng = np.random.default_rng(1)
    legs = np.where((np.arange(n) // 60) % 2 == 0, 0.012, -0.012)
    return 100 * np.exp(np.cumsum(legs + rng.normal(0, 0.002, n)))


def _planted_spec(**execution: Any) -> BacktestSpec:
    return BacktestSpec.parse(
        {
            "strategy": "sma_crossover",
            "symbols": ["DIPS", "SWING"],
            "grid": {"fast": [5, 20], "slow": [40, 100]},
            "execution": {"init_cash": 1.0, "fees_bps": 5, **execution},
        }
    )


def test_the_planted_best_pair_is_chosen_per_symbol() -> None:
    bars = _bars({"DIPS": _dips(1000), "SWING": _swings(1000)})
    calls: list[tuple[int, int, str]] = []
    result = walk_forward(
        bars,
        _planted_spec(),
        WalkForwardSpec(train=250, test=125),
        progress=lambda done, total, label: calls.append((done, total, label)),
    )
    table = result.windows
    assert table.height == 2 * 6
    chosen = table.group_by("symbol").agg(pl.col("fast").unique(), pl.col("slow").unique())
    assert dict(zip(chosen["symbol"], chosen["fast"].to_list(), strict=True)) == {
        "DIPS": [20],
        "SWING": [5],
    }
    assert dict(zip(chosen["symbol"], chosen["slow"].to_list(), strict=True)) == {
        "DIPS": [100],
        "SWING": [40],
    }
    assert (table["in_sample"] > 0.5).all()
    assert table["params"].str.contains('"fast":').all()
    assert [(done, total) for done, total, _ in calls] == [(i, 6) for i in range(1, 7)]
    assert calls[0][2].startswith("window 1/6: test ")
    stability = result.stability
    assert stability.height == 4  # one value per symbol and parameter
    assert (stability["share"] == 1.0).all()
    assert (stability["count"] == 6).all()
    assert (stability["changes"] == 0).all()
    assert (stability["std"] == 0.0).all()
    assert stability.filter(symbol="DIPS", param="slow")["mean"].item() == 100.0


def test_universe_selection_trades_one_set_for_all_symbols() -> None:
    bars = _bars({"DIPS": _dips(1000), "SWING": _swings(1000)})
    spec = _planted_spec()
    per_symbol = walk_forward(bars, spec, WalkForwardSpec(train=250, test=125))
    universe = walk_forward(bars, spec, WalkForwardSpec(train=250, test=125, select="universe"))
    assert (universe.windows.group_by("window").agg(pl.col("key").n_unique())["key"] == 1).all()
    # the per-symbol winners differ, so the shared set is worse in sample for someone
    merged = per_symbol.windows.join(universe.windows, on=["window", "symbol"], suffix="_u")
    assert (merged["in_sample"] >= merged["in_sample_u"]).all()
    assert (merged["in_sample"] > merged["in_sample_u"]).any()


def _synthetic(n_days: int = 900) -> pl.DataFrame:
    query = SyntheticBarsQuery(symbols=resolve_symbols("2"), n_days=n_days, seed=11)
    return simulate(query).drop("regime")


def _spec(**execution: Any) -> BacktestSpec:
    return BacktestSpec.parse(
        {
            "strategy": "sma_crossover",
            "symbols": list(resolve_symbols("2")),
            "grid": {"fast": [5, 10, 20], "slow": [30, 60]},
            "execution": {"init_cash": 1000.0, **execution},
        }
    )


@pytest.fixture(scope="module")
def plain() -> tuple[pl.DataFrame, WalkForwardResult]:
    """Two synthetic symbols, 900 bars, close execution without costs, 7 windows."""
    bars = _synthetic()
    return bars, walk_forward(bars, _spec(), WalkForwardSpec(train=200, test=100))


def test_the_stitched_curve_continues_across_window_boundaries(
    plain: tuple[pl.DataFrame, WalkForwardResult],
) -> None:
    _, result = plain
    equity = result.equity.sort("symbol", "ts")
    boundaries = equity.with_columns(
        pl.col("equity").shift(1).over("symbol").alias("before"),
        (pl.col("window") != pl.col("window").shift(1).over("symbol")).alias("new"),
    ).filter(pl.col("new"))
    # close execution, no fees: a window's account is flat on its first bar (its first
    # order fills at that close), so it opens exactly where the last window closed
    first = boundaries.filter(pl.col("before").is_null())
    assert (first["equity"] == 1000.0).all()
    later = boundaries.filter(pl.col("before").is_not_null())
    assert later.height == 2 * 6
    np.testing.assert_allclose(later["equity"], later["before"], rtol=1e-12)


@pytest.mark.parametrize(
    "execution",
    [{"fees_bps": 10.0}, {"fees_bps": 5.0, "slippage_bps": 3.0, "price": "open"}],
)
def test_each_window_equals_a_literal_account_from_the_carried_equity(
    execution: dict[str, Any],
) -> None:
    bars = _synthetic()
    spec = _spec(**execution)
    result = walk_forward(bars, spec, WalkForwardSpec(train=200, test=100, step=130))
    lf, keys = target_frame(prepare(bars, spec), spec, spec.param_sets())
    targets = lf.collect()
    carry = dict.fromkeys(spec.symbols, 1000.0)
    for row in result.windows.sort("window", "symbol").iter_rows(named=True):
        symbol = row["symbol"]
        own = targets.filter(pl.col("symbol") == symbol)
        anchor = own["ts"].search_sorted(row["test_start"]) - 1  # last bar before the window
        stop = own["ts"].search_sorted(row["test_end"], side="right")
        part = own.slice(anchor, stop - anchor)
        expected, _, _ = account(
            part["close"].to_numpy(),
            part[column("target", row["key"])].fill_null(np.nan).to_numpy(),
            fee=spec.execution.fee,
            slip=spec.execution.slippage,
            open_=part["open"].to_numpy() if spec.execution.price == "open" else None,
            cash=carry[symbol],
        )
        got = result.equity.filter(symbol=symbol, window=row["window"]).sort("ts")
        assert got["ts"].to_list() == part["ts"].to_list()[1:]
        np.testing.assert_allclose(got["equity"].to_numpy(), expected[1:], rtol=1e-9)
        carry[symbol] = float(expected[-1])
    assert keys == [f"p{i}" for i in range(6)]


def test_oos_metrics_are_the_metrics_of_the_stitched_curve() -> None:
    spec = _spec(fees_bps=10.0)
    wf = WalkForwardSpec(train=200, test=100, metric="total_return", mode="anchored")
    result = walk_forward(_synthetic(), spec, wf)
    assert result.windows["train_start"].n_unique() == 1
    curve = result.equity.sort("symbol", "ts")
    frame = curve.select(
        "symbol",
        "ts",
        pl.col("equity").alias(column("equity", "oos")),
        pl.col("weight").alias(column("weight", "oos")),
        pl.col("fees").alias(column("fees", "oos")),
    )
    again = backtest_metrics(frame, ["oos"], init_cash=1000.0).drop("key").sort("symbol")
    got = result.metrics.sort("symbol")
    assert got.columns == ["symbol", *METRICS]
    # the recomputed frame lacks turnover, fills and the benchmark returns
    same = [m for m in got.columns if m not in ("turnover", "orders", "benchmark_return")]
    same = [m for m in same if m not in ("alpha", "beta")]
    assert_frame_equal(got.select(same), again.select(same), rel_tol=1e-9)
    assert (got["total_fees"] > 0).all()
    last = curve.group_by("symbol").agg(pl.col("equity").last()).sort("symbol")
    np.testing.assert_allclose(got["total_return"], last["equity"] / 1000.0 - 1.0, rtol=1e-12)
    # each window's OOS score is its own total return, from the equity it started with
    per_window = (
        curve.group_by("symbol", "window", maintain_order=True)
        .agg(pl.col("equity").last())
        .with_columns(pl.col("equity").shift(1).over("symbol").fill_null(1000.0).alias("start"))
        .sort("symbol", "window")
    )
    np.testing.assert_allclose(
        result.windows.sort("symbol", "window")["out_of_sample"],
        per_window["equity"] / per_window["start"] - 1.0,
        rtol=1e-9,
    )


def test_the_benchmark_holds_the_symbol_from_the_first_window_on(
    plain: tuple[pl.DataFrame, WalkForwardResult],
) -> None:
    bars, result = plain
    for symbol in resolve_symbols("2"):
        closes = bars.filter(symbol=symbol).sort("ts")["close"].to_numpy()
        curve = result.equity.filter(symbol=symbol).sort("ts")
        assert curve.height == 900 - 200
        np.testing.assert_allclose(curve["benchmark"], 1000.0 * closes[200:] / closes[199])


def test_portfolio_specs_are_refused() -> None:
    spec = BacktestSpec.parse(
        {"strategy": "buy_and_hold", "symbols": ["SYN0000", "SYN0001"], "portfolio": {}}
    )
    with pytest.raises(SpecError, match="portfolio"):
        walk_forward(_synthetic(300), spec, WalkForwardSpec(train=100, test=50))
