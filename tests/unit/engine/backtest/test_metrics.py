"""Backtest metrics against plain numpy computations on simulated accounts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.backtest.execution import column, simulate
from engine.backtest.metrics import METRICS, SHARE_OF_TIME, backtest_metrics, regime_metrics
from engine.backtest.spec import Execution
from engine.backtest.trades import trade_table

CASH = 1000.0
PERIODS = 252
KEYS = ("mixed", "long", "flat")
START = datetime(2021, 1, 4, tzinfo=UTC)
TRADE_METRICS = ("trades", "win_rate", "profit_factor", "expectancy", "avg_trade_return")


def _targets(seed: int, bars: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0], bars // 9 + 1)
    return {
        "mixed": np.repeat(steps, 9)[:bars],  # long, short, flat and flips
        "long": np.where(np.arange(bars) % 60 < 45, 1.0, 0.0),  # all in, then flat
        "flat": np.zeros(bars),  # never trades
    }


def _frame(lengths: dict[str, int]) -> pl.DataFrame:
    """Simulated accounts for KEYS on random-walk symbols, with a benchmark and regimes."""
    parts = []
    for i, (symbol, bars) in enumerate(lengths.items()):
        rng = np.random.default_rng(i)
        close = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.02, bars)))
        row = np.arange(bars)
        data: dict[str, Any] = {
            "symbol": symbol,
            "ts": [START + timedelta(days=d) for d in range(bars)],
            "close": close,
            "_row": row.astype(np.int32),
            "regime": [None if r % 23 == 7 else (r // 40 + i) % 3 for r in row],
        }
        data.update({column("target", k): v for k, v in _targets(10 + i, bars).items()})
        parts.append(pl.DataFrame(data, schema_overrides={"regime": pl.Int32}))
    frame = pl.concat(parts)
    execution = Execution(fees_bps=10, init_cash=CASH)
    out = simulate(frame.lazy(), KEYS, execution).collect()
    bench = (pl.col("close") / pl.col("close").shift(1) - 1.0).over("symbol")
    return out.with_columns(bench.alias("_bench"))


FRAME = _frame({"A": 300, "B": 260, "C": 200})


def _longest_drawdown(curve: np.ndarray) -> int:
    """Bars from a peak (1 before the first bar) to the bar regaining it, or to the end."""
    peak, peak_bar, longest = 1.0, -1, 0
    for t, value in enumerate(curve):
        if value >= peak:
            longest = max(longest, t - peak_bar if t - peak_bar > 1 else 0)
            peak, peak_bar = value, t
    return max(longest, len(curve) - 1 - peak_bar)


def _curve_metrics(r: np.ndarray, bench: np.ndarray, bars: dict[str, np.ndarray]) -> dict[str, Any]:
    """The metrics of the bars with returns `r`, in plain numpy."""
    n, p = len(r), PERIODS
    curve = np.cumprod(1 + r)
    peak = np.maximum(np.maximum.accumulate(curve), 1.0)
    drawdown = float(np.min(curve / peak - 1))
    cagr = curve[-1] ** (p / n) - 1
    std = float(np.std(r, ddof=1)) if n > 1 else math.nan
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    b = np.nan_to_num(bench)
    beta = np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1) if n > 1 else math.nan
    return {
        "total_return": curve[-1] - 1,
        "cagr": cagr,
        "annual_return": np.mean(r) * p,
        "annual_volatility": std * math.sqrt(p),
        "sharpe": np.mean(r) / std * math.sqrt(p) if std > 0 else None,
        "sortino": np.mean(r) / downside * math.sqrt(p) if downside > 0 else None,
        "calmar": cagr / abs(drawdown) if drawdown < 0 else None,
        "max_drawdown": drawdown,
        "max_drawdown_duration": _longest_drawdown(curve),
        "exposure": np.mean(bars["held"] != 0),
        "turnover": np.sum(bars["turnover"]) * p / n,
        "total_fees": np.sum(bars["fees"]),
        "orders": int(np.sum(bars["trade"])),
        "benchmark_return": np.prod(1 + b) - 1,
        "alpha": (np.mean(r) - beta * np.mean(b)) * p,
        "beta": beta,
        "bars": n,
    }


def _trades(equity: np.ndarray, bars: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Round trips bar by bar: entries, exits and flips of the held weight."""
    weight, fees, turnover = bars["weight"], bars["fees"], bars["turnover"]

    def between(t: int) -> float:  # the equity between the two legs of a flip
        share = abs(weight[t]) * equity[t] / (turnover[t] * (equity[t] + fees[t]))
        return float(equity[t] + fees[t] * share)

    trades: list[dict[str, Any]] = []
    held = 0.0
    for t in range(len(equity)):
        side = float(np.sign(weight[t]))
        if side != held:
            if held != 0:
                after = equity[t] if side == 0 else between(t)
                trades[-1].update(pnl=after - trades[-1]["before"], is_open=False)
                trades[-1]["return"] = after / trades[-1]["before"] - 1
            if side != 0:
                before = (CASH if t == 0 else equity[t - 1]) if held == 0 else between(t)
                trades.append({"before": before, "bar": t})
        held = side
    if held != 0:
        trades[-1].update(pnl=equity[-1] - trades[-1]["before"], is_open=True)
        trades[-1]["return"] = equity[-1] / trades[-1]["before"] - 1
    return trades


def _trade_metrics(trades: list[dict[str, Any]]) -> dict[str, Any]:
    closed = [t for t in trades if not t["is_open"]]
    pnl = np.array([t["pnl"] for t in closed])
    losses = -pnl[pnl < 0].sum()
    return {
        "trades": len(trades),
        "win_rate": np.mean(pnl > 0) if closed else None,
        "profit_factor": pnl[pnl > 0].sum() / losses if losses > 0 else None,
        "expectancy": np.mean(pnl) if closed else None,
        "avg_trade_return": np.mean([t["return"] for t in closed]) if closed else None,
    }


def _symbol_bars(frame: pl.DataFrame, symbol: str, key: str) -> dict[str, np.ndarray]:
    part = frame.filter(symbol=symbol)
    bars = {kind: part[column(kind, key)].to_numpy() for kind in ("equity", "weight", "fees")}
    bars["turnover"] = part[column("turnover", key)].to_numpy()
    bars["trade"] = part[column("trade", key)].to_numpy()
    bars["bench"] = part["_bench"].to_numpy()
    bars["regime"] = np.array(part["regime"].to_list(), dtype=object)
    bars["ts"] = np.array(part["ts"].to_list(), dtype=object)
    equity = bars["equity"]
    bars["r"] = equity / np.r_[CASH, equity[:-1]] - 1
    bars["held"] = np.r_[0.0, bars["weight"][:-1]]  # the weight that earns each bar's return
    return bars


def _assert_close(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for name, expected in want.items():
        value = got[name]
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            assert value is None or math.isnan(value), f"{where} {name}: {value} != null"
        else:
            assert value is not None, f"{where} {name}: null != {expected}"
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{where} {name}"


def test_metrics_equal_numpy_per_key_and_symbol() -> None:
    table = backtest_metrics(FRAME, KEYS, init_cash=CASH)

    assert table.columns == ["key", "symbol", *METRICS]
    assert table.select("key", "symbol").rows() == [(k, s) for k in KEYS for s in "ABC"]
    for row in table.iter_rows(named=True):
        bars = _symbol_bars(FRAME, row["symbol"], row["key"])
        want = _curve_metrics(bars["r"], bars["bench"], bars)
        want |= _trade_metrics(_trades(bars["equity"], bars))
        want["total_return"] = bars["equity"][-1] / CASH - 1
        _assert_close(row, want, f"{row['key']}/{row['symbol']}")
        assert (row["start"], row["end"]) == (bars["ts"][0], bars["ts"][-1])


def test_the_mixed_strategy_exercises_every_metric() -> None:
    table = backtest_metrics(FRAME.lazy(), ["mixed"], init_cash=CASH)

    assert table.null_count().sum_horizontal().item() == 0
    assert (table["trades"] > 5).all() and (table["max_drawdown"] < 0).all()
    assert ((table["win_rate"] > 0) & (table["win_rate"] < 1)).all()


def test_given_trades_are_used_as_they_are() -> None:
    trades = trade_table(FRAME, ["mixed"]).filter(pl.col("symbol") != "A")

    table = backtest_metrics(FRAME, ["mixed"], init_cash=CASH, trades=trades)

    assert table["trades"].to_list()[0] == 0
    assert table["win_rate"].to_list()[0] is None
    assert (
        table["trades"].to_list()[1:]
        == trades.group_by("symbol").len().sort("symbol")["len"].to_list()
    )


def test_a_symbol_that_never_trades() -> None:
    row = backtest_metrics(FRAME, ["flat"], init_cash=CASH).row(0, named=True)

    assert row["exposure"] == 0.0 and row["trades"] == 0 and row["orders"] == 0
    assert row["total_return"] == 0.0 and row["max_drawdown"] == 0.0
    assert row["max_drawdown_duration"] == 0 and row["turnover"] == 0.0
    for name in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"):
        assert row[name] is None, name
    assert row["alpha"] == 0.0 and row["beta"] == 0.0


def test_drawdown_duration_runs_from_the_peak_to_the_recovery_or_the_end() -> None:
    curves = {
        # peak at bar 1, regained at bar 4 (3 bars); below the bar-4 peak to the end (2)
        "A": [100.0, 110.0, 105.0, 100.0, 111.0, 108.0, 109.0],
        # below the initial cash from the start, regained at bar 2: 3 bars from bar -1
        "B": [95.0, 97.0, 101.0],
        # never regained: from bar 0 to the end
        "C": [120.0, 90.0, 100.0, 110.0, 119.0],
    }
    frame = pl.DataFrame(
        {
            "symbol": [s for s, c in curves.items() for _ in c],
            "ts": [START + timedelta(days=i) for c in curves.values() for i in range(len(c))],
            "equity:k": [v for c in curves.values() for v in c],
            "weight:k": 1.0,
        }
    )

    table = backtest_metrics(frame, ["k"], init_cash=100.0)

    assert table["max_drawdown_duration"].to_list() == [3, 3, 4]
    np.testing.assert_allclose(table["max_drawdown"], [100 / 110 - 1, -0.05, 90 / 120 - 1])
    # without turnover, trade or benchmark columns those metrics are null
    for name in ("turnover", "orders", "benchmark_return", "alpha", "beta", "total_fees"):
        assert table[name].null_count() == 3, name
    assert table["trades"].to_list() == [1, 1, 1]


def test_single_bar_and_constant_equity() -> None:
    frame = pl.DataFrame(
        {
            "symbol": ["one", "still", "still", "still"],
            "ts": [START, START, START + timedelta(days=1), START + timedelta(days=2)],
            "equity:k": [101.0, 100.0, 100.0, 100.0],
            "weight:k": [0.0, 0.0, 0.0, 0.0],
            "_bench": [None, None, 0.01, -0.01],
        }
    )

    one, still = backtest_metrics(frame, ["k"], init_cash=100.0).iter_rows(named=True)

    assert one["bars"] == 1 and one["total_return"] == pytest.approx(0.01)
    assert one["cagr"] == pytest.approx(1.01**PERIODS - 1)
    assert one["sharpe"] is None and one["annual_volatility"] is None and one["beta"] is None
    assert still["sharpe"] is None and still["sortino"] is None and still["calmar"] is None
    assert still["beta"] == 0.0 and still["benchmark_return"] == pytest.approx(1.01 * 0.99 - 1)


def test_regime_metrics_equal_numpy_on_each_regimes_bars() -> None:
    table = regime_metrics(FRAME, KEYS, init_cash=CASH)

    assert table.columns == ["key", "symbol", "regime", *METRICS, SHARE_OF_TIME]
    for key in KEYS:
        for symbol in "ABC":
            bars = _symbol_bars(FRAME, symbol, key)
            trades = _trades(bars["equity"], bars)
            rows = table.filter(key=key, symbol=symbol)
            assert (
                sorted(rows["regime"].to_list(), key=lambda r: (r is None, r))
                == rows["regime"].to_list()
            )
            assert rows["share_of_time"].sum() == pytest.approx(1.0)
            for row in rows.iter_rows(named=True):
                mask = np.array([r == row["regime"] for r in bars["regime"]])
                part = {name: values[mask] for name, values in bars.items()}
                want = _curve_metrics(part["r"], part["bench"], part)
                want |= _trade_metrics(
                    [t for t in trades if bars["regime"][t["bar"]] == row["regime"]]
                )
                want[SHARE_OF_TIME] = mask.mean()
                _assert_close(row, want, f"{key}/{symbol}/{row['regime']}")
                assert (row["start"], row["end"]) == (part["ts"][0], part["ts"][-1])


def test_frames_without_what_the_metrics_need_are_refused() -> None:
    with pytest.raises(ValueError, match="regime"):
        regime_metrics(FRAME.drop("regime"), KEYS, init_cash=CASH)
    with pytest.raises(ValueError, match="equity:nope"):
        backtest_metrics(FRAME, ["nope"], init_cash=CASH)
    with pytest.raises(ValueError, match="sorted"):
        backtest_metrics(FRAME.sort("ts", "symbol"), KEYS, init_cash=CASH)
