"""Property-based tests of the engine's public functions on hostile frames.

Random bars with NaNs, infinities, zeros, negative prices, gaps, duplicate and unordered
timestamps and extreme values: nothing crashes, the quality check lets only sound rows
through (and counts the rest), and what the engine computes from checked bars — features,
market states, backtest metrics, alert firings — holds no NaN that is not a declared
"not enough data yet" null.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.alerts.conditions import AlertInputs
from engine.alerts.evaluate import evaluate
from engine.alerts.rules import parse_rule
from engine.analogs.embedding import EmbeddingSpec, state_vectors
from engine.backtest.engine import run_backtest
from engine.backtest.spec import BacktestSpec
from engine.features import with_features
from engine.ingest.quality import check_bars
from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

START = datetime(2020, 1, 1, tzinfo=UTC)
WEIRD = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-300, 1e300])
PROFILE = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def hostile_bars(draw: st.DrawFn, min_rows: int = 1, max_rows: int = 400) -> pl.DataFrame:
    """Bars of one or two symbols from a random walk, then vandalised."""
    n = draw(st.integers(min_rows, max_rows))
    symbols = draw(st.sampled_from([["AAA"], ["AAA", "BBB"]]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in symbols:
        steps = rng.integers(1, 4, n)  # gaps of up to 3 days
        ts = [START + timedelta(days=int(d)) for d in np.cumsum(steps)]
        close = 100 * np.exp(np.cumsum(rng.normal(0, draw(st.sampled_from([0.001, 0.02, 0.3])), n)))
        frames.append(
            pl.DataFrame(
                {
                    SYMBOL: symbol,
                    TS: ts,
                    OPEN: close * 1.001,
                    HIGH: close * 1.01,
                    LOW: close * 0.99,
                    CLOSE: close,
                    VOLUME: rng.integers(0, 10**9, n).astype(float),
                    ADJ_CLOSE: close,
                }
            )
        )
    bars = pl.concat(frames)
    damage = draw(st.integers(0, min(20, bars.height)))
    for _ in range(damage):
        row = draw(st.integers(0, bars.height - 1))
        column = draw(st.sampled_from([OPEN, HIGH, LOW, CLOSE, VOLUME]))
        bars = bars.with_columns(
            pl.when(pl.int_range(pl.len()) == row)
            .then(pl.lit(draw(WEIRD)))
            .otherwise(pl.col(column))
            .alias(column)
        )
    if draw(st.booleans()):  # duplicate some rows (same symbol and timestamp)
        bars = pl.concat([bars, bars.sample(n=min(5, bars.height), seed=seed)])
    if draw(st.booleans()):
        bars = bars.sample(fraction=1.0, shuffle=True, seed=seed)
    return bars


def _finite(frame: pl.DataFrame, columns: list[str]) -> bool:
    return all(frame[c].is_finite().all() for c in columns if frame[c].len())


@PROFILE
@given(hostile_bars())
def test_the_quality_check_passes_only_sound_rows_and_counts_the_rest(bars: pl.DataFrame) -> None:
    clean, report = check_bars(bars)
    assert report.rows_in == bars.height
    assert clean.height + report.rows_rejected == bars.height
    assert _finite(clean, [OPEN, HIGH, LOW, CLOSE])
    assert (clean[CLOSE] > 0).all()
    assert (clean[HIGH] >= clean[LOW]).all()
    assert clean.select(pl.struct(SYMBOL, TS).is_unique().all()).item()
    assert clean.equals(clean.sort(SYMBOL, TS))


@PROFILE
@given(hostile_bars(max_rows=300))
def test_features_of_checked_bars_have_no_nan_only_warm_up_nulls(bars: pl.DataFrame) -> None:
    clean, _ = check_bars(bars)
    names = ["log_return", "realized_vol_20d", "trend_slope_20d", "momentum_63d", "drawdown"]
    featured = with_features(clean.lazy(), names).collect()
    for name in names:
        column = featured[name]
        assert column.is_nan().sum() == 0, name  # nulls (warm-up) are declared, NaN is not
        assert column.drop_nulls().is_finite().all(), name


@PROFILE
@given(hostile_bars(min_rows=260, max_rows=420))
def test_market_states_are_finite_or_absent(bars: pl.DataFrame) -> None:
    clean, _ = check_bars(bars)
    states = state_vectors(clean, EmbeddingSpec(regime_model=None))
    if states.height:
        assert np.isfinite(states["embedding"].to_numpy()).all()
        assert states.select(pl.struct(SYMBOL, TS).is_unique().all()).item()


@PROFILE
@given(hostile_bars(min_rows=30, max_rows=300), st.integers(2, 20), st.integers(21, 80))
def test_backtest_metrics_are_numbers_or_declared_nulls(
    bars: pl.DataFrame, fast: int, slow: int
) -> None:
    clean, _ = check_bars(bars)
    symbols = tuple(sorted(clean[SYMBOL].unique().to_list()))
    if not symbols:
        return
    spec = BacktestSpec(
        strategy="sma_crossover", symbols=symbols, params={"fast": fast, "slow": slow}
    )
    result = run_backtest(clean, spec)
    numeric = [c for c, t in result.metrics.schema.items() if t.is_float()]
    for column in numeric:
        assert result.metrics[column].is_nan().sum() == 0, column
    if result.equity is not None:
        assert result.equity["equity"].drop_nulls().is_finite().all()


@PROFILE
@given(hostile_bars(min_rows=2, max_rows=300), st.floats(1, 60))
def test_alert_evaluation_never_crashes_and_fires_on_real_bars(
    bars: pl.DataFrame, threshold: float
) -> None:
    clean, _ = check_bars(bars)
    rule = parse_rule(
        {
            "name": "dd",
            "condition": {"kind": "drawdown", "threshold_pct": threshold},
            "symbols": ["AAA", "BBB"],
        }
    )
    fired = evaluate([(1, rule)], AlertInputs(bars=clean))
    assert set(fired[SYMBOL].to_list()) <= set(clean[SYMBOL].to_list())
    assert set(fired[TS].to_list()) <= set(clean[TS].to_list())
