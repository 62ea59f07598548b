"""Block and trade bootstraps: circular shifts, ordering, determinism, input checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.backtest import montecarlo
from engine.backtest.montecarlo import STATISTICS, monte_carlo, quantile_name
from engine.strategies.base import SpecError


def _returns(n: int = 300, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0005, 0.012, n)


def _max_drawdown(returns: np.ndarray) -> float:
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    return float((equity / np.maximum.accumulate(equity) - 1.0).min())


def test_a_block_as_long_as_the_series_gives_circular_shifts() -> None:
    returns = _returns(60)
    result = monte_carlo(returns, paths=400, block=len(returns), seed=1)
    paths = result.paths
    # a circular shift keeps every return, so the product, mean and std are unchanged
    total = np.prod(1.0 + returns) - 1.0
    np.testing.assert_allclose(paths["total_return"].to_numpy(), total, rtol=1e-10)
    sharpe = returns.mean() / returns.std(ddof=1) * np.sqrt(252)
    np.testing.assert_allclose(paths["sharpe"].to_numpy(), sharpe, rtol=1e-8)
    shifts = np.array([_max_drawdown(np.roll(returns, -k)) for k in range(len(returns))])
    drawdowns = paths["max_drawdown"].to_numpy()
    assert np.isclose(drawdowns[:, None], shifts[None, :], rtol=1e-10, atol=0).any(axis=1).all()
    assert len(np.unique(np.round(drawdowns, 12))) > 1  # not all the same shift
    assert result.prob_loss() == float(total < 0)


def test_quantiles_are_ordered_and_bands_start_at_the_initial_cash() -> None:
    result = monte_carlo(
        _returns(), paths=500, block=10, quantiles=(0.95, 0.05, 0.25, 0.5), init_cash=100.0
    )
    names = [quantile_name(q) for q in (0.05, 0.25, 0.5, 0.95)]
    assert names == ["q05", "q25", "q50", "q95"]
    summary, bands = result.summary, result.bands
    assert summary["statistic"].to_list() == list(STATISTICS)
    values = summary.select(names).to_numpy()
    assert (np.diff(values, axis=1) >= 0).all()
    levels = bands.select(names).to_numpy()
    assert (np.diff(levels, axis=1) >= 0).all()
    assert bands["step"].to_list() == list(range(301))
    np.testing.assert_allclose(levels[0], 100.0)
    assert (summary.filter(pl.col("statistic") == "max_drawdown")["q95"] <= 0).all()
    final = result.paths["total_return"].to_numpy()
    np.testing.assert_allclose(
        levels[-1], 100.0 * (1 + np.quantile(final, [0.05, 0.25, 0.5, 0.95]))
    )
    cagr = (1 + final) ** (252 / 300) - 1
    np.testing.assert_allclose(result.paths["cagr"].to_numpy(), cagr, rtol=1e-12)


def test_the_same_seed_gives_the_same_paths() -> None:
    returns = _returns()
    first = monte_carlo(returns, paths=200, seed=7)
    again = monte_carlo(returns, paths=200, seed=7)
    other = monte_carlo(returns, paths=200, seed=8)
    assert first.summary.equals(again.summary)
    assert first.bands.equals(again.bands)
    assert first.paths.equals(again.paths)
    assert not first.paths.equals(other.paths)


def test_chunked_paths_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    returns = _returns(101)
    whole = monte_carlo(returns, paths=64, block=7, seed=2)
    monkeypatch.setattr(montecarlo, "_CELLS_PER_CHUNK", 64 * 9)  # 9 steps per chunk
    chunked = monte_carlo(returns, paths=64, block=7, seed=2)
    for name in ("summary", "bands", "paths"):
        left, right = getattr(whole, name), getattr(chunked, name)
        np.testing.assert_allclose(
            left.select(pl.selectors.numeric()).to_numpy(),
            right.select(pl.selectors.numeric()).to_numpy(),
            rtol=1e-10,
        )


def test_a_frame_is_bootstrapped_per_symbol() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    a, b = _returns(120, seed=1), _returns(80, seed=2)
    frame = pl.DataFrame(
        {
            "symbol": ["B"] * 80 + ["A"] * 120,
            "ts": [start + timedelta(days=i) for i in range(80)]
            + [start + timedelta(days=i) for i in range(120)],
            "ret": np.concatenate([b, a]),
        }
    ).reverse()
    result = monte_carlo(frame, paths=100, seed=4)
    assert result.summary[montecarlo.SYMBOL].unique(maintain_order=True).to_list() == ["A", "B"]
    assert result.bands.group_by("symbol").len().sort("symbol")["len"].to_list() == [121, 81]
    # symbols are sorted and each draws from its own child seed: A is the first child
    alone = monte_carlo(a, paths=100, seed=4)
    np.testing.assert_allclose(
        result.paths.filter(pl.col("symbol") == "A")["total_return"].to_numpy(),
        alone.paths["total_return"].to_numpy(),
    )


def test_trade_bootstrap_draws_single_trades() -> None:
    trades = np.array([0.05, -0.02, 0.03, -0.01, 0.04])
    result = monte_carlo(trades, paths=2000, method="trades", seed=5, periods_per_year=20)
    assert result.bands["step"].max() == len(trades)
    final = result.paths["total_return"].to_numpy()
    # every path compounds five draws from the five trades
    products = np.prod(1 + np.array(np.meshgrid(*[trades] * 5)).reshape(5, -1), axis=0) - 1
    assert np.isclose(final[:, None], products[None, :], rtol=1e-12).any(axis=1).all()
    assert len(np.unique(np.round(final, 12))) > 20
    same = monte_carlo(np.full(4, 0.01), paths=10, method="trades")
    np.testing.assert_allclose(same.paths["total_return"].to_numpy(), 1.01**4 - 1)


@pytest.mark.parametrize(
    ("returns", "options", "message"),
    [
        (np.zeros(10), {"paths": 0}, "paths"),
        (np.zeros(10), {"paths": 100_001}, "paths"),
        (np.zeros(10), {"block": 0}, "block"),
        (np.zeros(1), {}, "at least 2"),
        (np.array([0.01, np.nan]), {}, "at least 2"),
        (np.zeros((3, 3)), {}, "1-D"),
        (np.array([0.1, -1.5]), {}, ">= -1"),
        (np.array([0.1, np.inf]), {}, "finite"),
        (np.zeros(10), {"method": "iid"}, "method"),
        (np.zeros(10), {"quantiles": (0.5, 1.5)}, "quantiles"),
        (np.zeros(10), {"init_cash": 0.0}, "init_cash"),
        (pl.DataFrame({"symbol": ["A"], "r": [0.1]}), {}, "ret"),
    ],
)
def test_bad_inputs_are_rejected(returns: object, options: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        monte_carlo(returns, **options)  # type: ignore[arg-type]
