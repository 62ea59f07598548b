"""The registered features as DuckDB SQL equal the Polars ones."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.features.names import FEATURE_NAMES
from engine.features.pipeline import with_features
from engine.features.sql import features_query, with_features_sql
from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.schema import REGIME, SYMBOL, TS


@pytest.mark.parametrize("source", ["synthetic", "sample"])
def test_sql_features_equal_polars(source) -> None:
    if source == "synthetic":
        frame = simulate(SyntheticBarsQuery(symbols=resolve_symbols("3"), n_days=200)).drop(REGIME)
    else:
        frame = fetch_bars(["SPX", "VIX"]).sort(SYMBOL, TS)
    expected = with_features(frame.lazy(), FEATURE_NAMES).collect()
    assert_frame_equal(
        with_features_sql(frame, FEATURE_NAMES), expected, rel_tol=1e-9, abs_tol=1e-12
    )


def test_sql_sorts_by_symbol_and_ts() -> None:
    frame = simulate(SyntheticBarsQuery(symbols=resolve_symbols("2"), n_days=30)).drop(REGIME)
    result = with_features_sql(frame.sort(TS, SYMBOL), ["log_return"])
    assert result.select(SYMBOL, TS).equals(frame.select(SYMBOL, TS))


def test_unknown_feature_in_sql() -> None:
    with pytest.raises(ValueError, match="known features"):
        features_query("bars", ["bogus"], columns=["symbol"])


def test_polars_frame_round_trips_its_types() -> None:
    frame = simulate(SyntheticBarsQuery(symbols=resolve_symbols("1"), n_days=5)).drop(REGIME)
    assert with_features_sql(frame, []).schema == frame.schema
    assert isinstance(with_features_sql(frame, []), pl.DataFrame)
