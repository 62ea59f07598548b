"""The feature registry and pipeline steps: both forms agree on real and simulated bars,
warm-ups are as declared, symbols never leak into each other, bad input is refused."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.features.names import FEATURE_NAMES
from engine.features.pipeline import FEATURES, feature_names, with_features, with_reference
from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.schema import CLOSE, REGIME, SYMBOL, TS


@pytest.fixture(scope="module")
def synthetic() -> pl.DataFrame:
    query = SyntheticBarsQuery(symbols=resolve_symbols("4"), n_days=300)
    return simulate(query).drop(REGIME)


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    """S&P 500, NASDAQ and the close-only VIX: real data, flat OHLC included."""
    return fetch_bars(["SPX", "IXIC", "VIX"]).sort(SYMBOL, TS)


def test_registry_holds_every_name_once() -> None:
    assert tuple(FEATURES) == FEATURE_NAMES
    for name, spec in FEATURES.items():
        assert spec.name == name
        assert spec().meta.output_name() == name
        assert spec(presorted=True).meta.output_name() == name


@pytest.mark.parametrize("frame_name", ["synthetic", "sample"])
def test_fast_form_equals_the_over_form(frame_name, request) -> None:
    frame = request.getfixturevalue(frame_name)
    fast = with_features(frame.lazy(), FEATURE_NAMES).collect()
    simple = with_features(frame.lazy(), FEATURE_NAMES, presorted=False).collect()
    assert fast.columns == [*frame.columns, *FEATURE_NAMES]
    assert_frame_equal(fast, simple, rel_tol=1e-9, abs_tol=1e-12)


def test_declared_warmups_are_the_leading_nulls(synthetic) -> None:
    result = with_features(synthetic.lazy(), FEATURE_NAMES).collect()
    for name, spec in FEATURES.items():
        per_symbol = result.group_by(SYMBOL).agg(
            pl.col(name).is_not_null().arg_true().first().alias("first"), pl.col(name).null_count()
        )
        assert per_symbol["first"].to_list() == [spec.warmup] * 4, name
        assert per_symbol[name].to_list() == [spec.warmup] * 4, name


def test_a_symbol_gets_the_same_features_alone_or_among_others(synthetic) -> None:
    alone = with_features(synthetic.filter(pl.col(SYMBOL) == "SYN0002").lazy(), FEATURE_NAMES)
    among = with_features(synthetic.lazy(), FEATURE_NAMES).filter(pl.col(SYMBOL) == "SYN0002")
    assert_frame_equal(alone.collect(), among.collect(), rel_tol=1e-12, abs_tol=1e-15)


def test_over_form_accepts_interleaved_symbols(synthetic) -> None:
    panel = synthetic.sort(TS, SYMBOL)
    result = with_features(panel.lazy(), FEATURE_NAMES, presorted=False).collect()
    expected = with_features(synthetic.lazy(), FEATURE_NAMES).collect()
    assert_frame_equal(result.sort(SYMBOL, TS), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_unknown_feature_names_list_the_known_ones(synthetic) -> None:
    with pytest.raises(ValueError, match=r"unknown feature\(s\) 'vol_20d'.*realized_vol_20d"):
        with_features(synthetic.lazy(), ["log_return", "vol_20d"])
    with pytest.raises(ValueError, match="known features"):
        feature_names("nope")


def test_missing_input_columns_are_named(synthetic) -> None:
    with pytest.raises(ValueError, match=r"need column\(s\): \['high', 'low'\]"):
        with_features(synthetic.drop("high", "low").lazy(), ["parkinson_vol_20d"])


@pytest.mark.parametrize(
    "scramble",
    [
        lambda f: f.sort(TS, SYMBOL),  # symbols interleaved
        lambda f: pl.concat([f.slice(0, 100), f.slice(400), f.slice(100, 300)]),  # split
        lambda f: f.sort(SYMBOL, TS, descending=[False, True]),  # time runs backwards
        lambda f: pl.concat([f.head(3), f.slice(2)]),  # a duplicated bar
    ],
    ids=["interleaved", "split symbol", "reversed time", "duplicate"],
)
def test_fast_form_refuses_bars_out_of_order(synthetic, scramble) -> None:
    with pytest.raises(ValueError, match="each symbol's bars together and in time order"):
        with_features(scramble(synthetic).lazy(), ["log_return"]).collect()


def test_fast_form_takes_symbols_in_any_order(synthetic) -> None:
    """A database collation may order symbols differently: only grouping matters."""
    descending = synthetic.sort(SYMBOL, TS, descending=[True, False])
    result = with_features(descending.lazy(), FEATURE_NAMES).collect()
    expected = with_features(synthetic.lazy(), FEATURE_NAMES).collect()
    assert_frame_equal(result.sort(SYMBOL, TS), expected)


def test_fast_form_refuses_null_prices(synthetic) -> None:
    holed = synthetic.with_columns(
        pl.when(pl.int_range(pl.len()) == 10).then(None).otherwise(pl.col(CLOSE)).alias(CLOSE)
    )
    with pytest.raises(ValueError, match="non-null close"):
        with_features(holed.lazy(), ["sma_50d"]).collect()
    # the over form takes them: windows over the missing price (rows 10..59) are null
    result = with_features(holed.lazy(), ["sma_50d"], presorted=False).collect()
    assert result["sma_50d"].null_count() == 4 * 49 + (59 - 49 + 1)


def test_empty_frame_gives_an_empty_frame(synthetic, presorted) -> None:
    result = with_features(synthetic.clear().lazy(), FEATURE_NAMES, presorted=presorted)
    assert result.collect().shape == (0, len(synthetic.columns) + len(FEATURE_NAMES))


def test_reference_series_is_joined_as_of_each_bar(synthetic) -> None:
    times = synthetic[TS].unique().sort()
    # a reference that starts late and skips days: bars see its latest earlier value
    reference = pl.DataFrame(
        {SYMBOL: "VIX", TS: times[10::3], CLOSE: np.arange(len(times[10::3]), dtype=float)}
    )
    result = with_reference(synthetic.lazy(), reference.lazy()).collect()
    assert result.select(SYMBOL, TS).equals(synthetic.select(SYMBOL, TS))  # order kept
    one = result.filter(pl.col(SYMBOL) == "SYN0001")
    expected = [None] * 10 + [float(i // 3) for i in range(len(times) - 10)]
    assert one["vix"].to_list() == expected


def test_reference_never_looks_ahead(synthetic) -> None:
    times = synthetic[TS].unique().sort()
    past = pl.DataFrame({SYMBOL: "VIX", TS: times[:200], CLOSE: np.arange(200.0)})
    later = pl.DataFrame(
        {SYMBOL: "VIX", TS: [t + timedelta(hours=12) for t in times[200:]], CLOSE: -1.0}
    )
    before = with_reference(synthetic.lazy(), past.lazy()).collect()
    after = with_reference(synthetic.lazy(), pl.concat([past, later]).lazy()).collect()
    cutoff = pl.col(TS) <= times[199]
    assert before.filter(cutoff).equals(after.filter(cutoff))
