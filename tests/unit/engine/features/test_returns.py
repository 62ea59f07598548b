"""Log and simple returns per symbol, both forms, against NumPy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.features.returns import log_return, simple_return
from engine.schema import CLOSE, OPEN, SYMBOL, TS


def first_nan(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[np.nan], values])


def test_log_return_per_symbol(bars, presorted, reference, assert_matches) -> None:
    expected = reference(bars, lambda c: first_nan(np.diff(np.log(c[CLOSE]))))
    assert_matches(bars.select(log_return(presorted=presorted)).to_series(), expected)


def test_simple_return_per_symbol(bars, presorted, reference, assert_matches) -> None:
    expected = reference(bars, lambda c: first_nan(c[CLOSE][1:] / c[CLOSE][:-1] - 1.0))
    assert_matches(bars.select(simple_return(presorted=presorted)).to_series(), expected)


def test_returns_of_another_column_or_expression(bars, reference, assert_matches) -> None:
    by_name = bars.select(log_return(OPEN)).to_series()
    assert by_name.equals(bars.select(log_return(pl.col(OPEN))).to_series())
    assert_matches(by_name, reference(bars, lambda c: first_nan(np.diff(np.log(c[OPEN])))))


def test_over_form_works_on_interleaved_symbols(bars) -> None:
    panel = bars.sort(TS, SYMBOL)  # symbols interleaved, each in time order
    result = panel.with_columns(log_return().alias("r")).sort(SYMBOL, TS)
    assert result["r"].equals(bars.select(log_return(presorted=True).alias("r"))["r"])


def test_single_bar_and_empty_frames(make_bars, presorted) -> None:
    one = make_bars({"AAA": 1})
    assert one.select(log_return(presorted=presorted)).to_series().null_count() == 1
    assert one.clear().select(log_return(presorted=presorted)).height == 0


@pytest.mark.parametrize("feature", [log_return, simple_return])
def test_output_is_named_after_the_price(feature, bars) -> None:
    assert bars.select(feature()).columns == [CLOSE]
