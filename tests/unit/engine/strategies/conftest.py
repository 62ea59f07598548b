"""Small bar frames shaped like the backtest engine's, and helpers to evaluate strategies
on them, as fixtures (test modules cannot import a conftest under `--import-mode=importlib`).

Two symbols at very different price levels (100 and 5,000) and of different lengths, so
a value leaking across the symbol boundary shows. Every frame carries the regime columns
(the symbol's own and the reference symbol's), so regime strategies run on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.features.per_symbol import Presorted
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME
from engine.strategies.base import Bars, get_strategy

BARS = Bars(layout=Presorted(row_in_symbol=pl.col("_row"), run=pl.col("_run")))
"""The engine's view of the frame: its `_row` and `_run` helper columns."""

PerSymbol = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Reference targets of one symbol from its columns (numpy arrays, regime nulls as -1)."""


def _regime_chain(rng: np.random.Generator, n: int) -> np.ndarray:
    """A sticky 3-state chain, -1 (unknown) for the first 3 bars and now and then."""
    states = np.empty(n, dtype=np.int64)
    states[0] = 0
    for t in range(1, n):  # test data: plain and obvious
        states[t] = states[t - 1] if rng.random() < 0.85 else rng.integers(0, 3)
    states[:3] = -1
    states[rng.random(n) < 0.05] = -1
    return states


def with_engine_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (sorted by symbol, ts) with the engine's `_row` and `_run` columns."""
    return frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int32).over(SYMBOL).alias("_row"),
        pl.col(SYMBOL).rle_id().alias("_run"),
    )


def _make_bars(lengths: Mapping[str, int], *, seed: int = 11) -> pl.DataFrame:
    """Bars sorted by (symbol, ts), from the same start date, with regime columns."""
    rng = np.random.default_rng(seed)
    start = datetime(2022, 1, 3, tzinfo=UTC)
    longest = max(lengths.values())
    reference = _regime_chain(rng, longest)  # the reference symbol's regime, by date
    reference_prob = rng.uniform(0.34, 1.0, longest)
    frames = []
    for index, (symbol, n) in enumerate(sorted(lengths.items())):
        close = 100.0 * 50**index * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.004, n))
        regime = _regime_chain(rng, n)
        frames.append(
            pl.DataFrame(
                {
                    SYMBOL: [symbol] * n,
                    TS: [start + timedelta(days=i) for i in range(n)],
                    OPEN: open_,
                    HIGH: np.maximum(open_, close) * 1.003,
                    LOW: np.minimum(open_, close) * 0.997,
                    CLOSE: close,
                    VOLUME: rng.uniform(1e5, 1e6, n),
                    "regime": regime,
                    "regime_prob": rng.uniform(0.34, 1.0, n),
                    "ref_regime": reference[:n],
                    "ref_regime_prob": reference_prob[:n],
                }
            )
        )
    unknown = {name: pl.col(name).replace(-1, None) for name in ("regime", "ref_regime")}
    frame = pl.concat(frames).with_columns(
        pl.col(TS).cast(pl.Datetime("us", "UTC")),
        *(expr.cast(pl.Int32).alias(name) for name, expr in unknown.items()),
    )
    return with_engine_columns(frame)


def _evaluate(
    frame: pl.DataFrame, name: str, params: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Targets of strategy `name` with `params` on `frame`, as floats (null -> NaN)."""
    definition = get_strategy(name)
    target = definition.targets(definition.make(params), BARS).alias("target")
    result = frame.lazy().with_columns(target).collect()["target"]
    return result.cast(pl.Float64).fill_null(np.nan).to_numpy()


def _per_symbol(frame: pl.DataFrame, reference: PerSymbol) -> np.ndarray:
    """`reference` applied to each symbol's columns, in the frame's row order."""
    parts = []
    for _, group in frame.group_by(SYMBOL, maintain_order=True):
        columns = {
            name: (series.fill_null(-1) if series.dtype.is_integer() else series).to_numpy()
            for name, series in group.to_dict().items()
        }
        parts.append(np.asarray(reference(columns), dtype=np.float64))
    return np.concatenate(parts)


def _assert_targets(actual: np.ndarray, expected: np.ndarray, *, rtol: float = 1e-9) -> None:
    """Same null (NaN) rows, and the same values elsewhere."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), "null rows differ")
    present = ~np.isnan(expected)
    np.testing.assert_allclose(actual[present], expected[present], rtol=rtol, atol=1e-12)


@pytest.fixture
def make_bars() -> Callable[..., pl.DataFrame]:
    """`make_bars({"AAA": 90, ...}, seed=11)`: engine-shaped bars with regime columns."""
    return _make_bars


@pytest.fixture
def bars() -> pl.DataFrame:
    """Two symbols: AAA (120 bars, around 100) and BBB (87 bars, around 5,000)."""
    return _make_bars({"AAA": 120, "BBB": 87})


@pytest.fixture
def evaluate() -> Callable[..., np.ndarray]:
    """`evaluate(frame, name, params)`: the strategy's targets, null as NaN."""
    return _evaluate


@pytest.fixture
def per_symbol() -> Callable[[pl.DataFrame, PerSymbol], np.ndarray]:
    """`per_symbol(frame, reference)`: reference targets computed symbol by symbol."""
    return _per_symbol


@pytest.fixture
def assert_targets() -> Callable[..., None]:
    """`assert_targets(actual, expected)`: same null rows, values within 1e-9."""
    return _assert_targets
