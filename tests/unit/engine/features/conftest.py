"""Small canonical bar frames and NumPy reference helpers for the feature tests, as
fixtures (test modules cannot import a conftest under `--import-mode=importlib`).

Two symbols at very different price levels (100 and 5,000), of different lengths, so a
value leaking across the symbol boundary or a window starting in the wrong place shows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

Reference = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Reference values of one symbol from its columns (open, high, low, close arrays)."""


def _make_bars(lengths: dict[str, int], *, seed: int = 7) -> pl.DataFrame:
    """Canonical bars, sorted by (symbol, ts): a random walk per symbol with an OHLC range."""
    rng = np.random.default_rng(seed)
    frames = []
    for index, (symbol, n) in enumerate(sorted(lengths.items())):
        level = 100.0 * 50**index
        close = level * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.004, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.006, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.006, n)))
        start = datetime(2021, 1, 4, tzinfo=UTC)
        frames.append(
            pl.DataFrame(
                {
                    SYMBOL: [symbol] * n,
                    TS: [start + timedelta(days=i) for i in range(n)],
                    OPEN: open_,
                    HIGH: high,
                    LOW: low,
                    CLOSE: close,
                    VOLUME: np.full(n, 1e6),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col(TS).cast(pl.Datetime("us", "UTC")))


@pytest.fixture
def make_bars() -> Callable[..., pl.DataFrame]:
    """`make_bars({"AAA": 40, ...}, seed=7)`: canonical bars sorted by (symbol, ts)."""
    return _make_bars


@pytest.fixture
def bars() -> pl.DataFrame:
    """Two symbols: AAA (40 bars, around 100) and BBB (33 bars, around 5,000)."""
    return _make_bars({"AAA": 40, "BBB": 33})


@pytest.fixture(params=[False, True], ids=["over", "presorted"])
def presorted(request: pytest.FixtureRequest) -> bool:
    """Both forms of every feature: `.over(symbol)` and the fast flat one."""
    return bool(request.param)


def _reference(frame: pl.DataFrame, per_symbol: Reference) -> np.ndarray:
    """`per_symbol` applied to each symbol's columns, in the frame's row order (sorted)."""
    parts = []
    for _, group in frame.group_by(SYMBOL, maintain_order=True):
        columns = {name: group[name].to_numpy() for name in (OPEN, HIGH, LOW, CLOSE)}
        parts.append(np.asarray(per_symbol(columns), dtype=np.float64))
    return np.concatenate(parts)


def _trailing(
    values: np.ndarray, window: int, statistic: Callable[[np.ndarray], float]
) -> np.ndarray:
    """`statistic` of each trailing window of `values`; NaN until a full window exists."""
    out = np.full(values.shape, np.nan)
    for end in range(window, values.size + 1):  # reference code: plain and obvious
        out[end - 1] = statistic(values[end - window : end])
    return out


def _assert_matches(actual: pl.Series, expected: np.ndarray, *, rtol: float = 1e-10) -> None:
    """Same missing rows (null/NaN) and the same values elsewhere."""
    values = actual.cast(pl.Float64).fill_null(np.nan).to_numpy()
    missing = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(values), missing, err_msg="missing rows differ")
    np.testing.assert_allclose(values[~missing], expected[~missing], rtol=rtol, atol=1e-13)


@pytest.fixture
def reference() -> Callable[[pl.DataFrame, Reference], np.ndarray]:
    """`reference(frame, per_symbol)`: NumPy reference values in the frame's row order."""
    return _reference


@pytest.fixture
def trailing() -> Callable[[np.ndarray, int, Callable[[np.ndarray], float]], np.ndarray]:
    """`trailing(values, window, statistic)`: a statistic of each full trailing window."""
    return _trailing


@pytest.fixture
def assert_matches() -> Callable[..., None]:
    """`assert_matches(series, expected)`: same missing rows, values within 1e-10."""
    return _assert_matches
