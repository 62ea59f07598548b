"""The sample provider: real daily series shipped inside the `arch` package, read offline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import polars as pl
import pytest

from engine.providers import sample
from engine.providers.base import ProviderContext
from engine.providers.errors import UnknownSymbolError
from engine.providers.sample import SAMPLE_SYMBOLS, fetch_bars
from engine.providers.standard.bars import BarsQuery
from engine.schema import ADJ_CLOSE, BAR_SCHEMA, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME
from engine.settings import PROJECT_ROOT

# symbol -> (rows after dropping missing values, first bar, last bar)
EXPECTED = {
    "SPX": (5031, datetime(1999, 1, 4, tzinfo=UTC), datetime(2018, 12, 31, tzinfo=UTC)),
    "IXIC": (5031, datetime(1999, 1, 4, tzinfo=UTC), datetime(2018, 12, 31, tzinfo=UTC)),
    "VIX": (1259, datetime(2014, 1, 3, tzinfo=UTC), datetime(2019, 1, 3, tzinfo=UTC)),
    "WTI": (8321, datetime(1986, 1, 2, tzinfo=UTC), datetime(2019, 1, 3, tzinfo=UTC)),
}
CLOSE_ONLY = ["VIX", "WTI"]


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def load(symbols: tuple[str, ...], **params: datetime) -> pl.DataFrame:
    query = BarsQuery(symbols=symbols, **params)
    return sample.transform(query, sample.extract(query, ProviderContext()))


@pytest.fixture(scope="module")
def every_series() -> pl.DataFrame:
    return fetch_bars(list(SAMPLE_SYMBOLS))


def test_the_sample_symbols() -> None:
    assert list(SAMPLE_SYMBOLS) == ["SPX", "IXIC", "VIX", "WTI"]


@pytest.mark.parametrize("symbol", list(EXPECTED))
def test_each_series_has_its_known_length_and_span(every_series: pl.DataFrame, symbol: str) -> None:
    rows, first, last = EXPECTED[symbol]
    series = every_series.filter(pl.col(SYMBOL) == symbol)

    assert series.height == rows
    assert series[TS].min() == first
    assert series[TS].max() == last


@pytest.mark.parametrize("symbol", list(EXPECTED))
def test_a_series_loaded_alone_matches_the_combined_load(
    every_series: pl.DataFrame, symbol: str
) -> None:
    alone = load((symbol,))
    combined = every_series.filter(pl.col(SYMBOL) == symbol).select(alone.columns)

    assert alone.equals(combined)


def test_frames_are_canonical_with_adj_close(every_series: pl.DataFrame) -> None:
    assert every_series.schema == pl.Schema({**BAR_SCHEMA, ADJ_CLOSE: pl.Float64()})
    assert every_series.select(SYMBOL, TS).is_duplicated().sum() == 0


def test_bars_are_at_midnight_utc_in_date_order(every_series: pl.DataFrame) -> None:
    assert (every_series[TS].dt.hour() == 0).all()
    assert every_series.select(pl.col(TS).is_sorted().over(SYMBOL)).to_series().all()


def test_the_first_spx_bar_has_its_known_values(every_series: pl.DataFrame) -> None:
    first = every_series.filter(pl.col(SYMBOL) == "SPX").row(0, named=True)

    assert first[TS] == utc(1999, 1, 4)
    assert first[CLOSE] == pytest.approx(1228.099976)
    assert first[OPEN] == pytest.approx(1229.22998)
    assert first[HIGH] == pytest.approx(1248.810059)
    assert first[LOW] == pytest.approx(1219.099976)
    assert first[VOLUME] == 877_000_000.0
    assert first[ADJ_CLOSE] == pytest.approx(1228.099976)


def test_the_first_vix_and_wti_values(every_series: pl.DataFrame) -> None:
    firsts = every_series.group_by(SYMBOL).agg(pl.col(CLOSE).first())
    close = dict(firsts.iter_rows())

    assert close["VIX"] == pytest.approx(13.76)
    assert close["WTI"] == pytest.approx(25.56)


@pytest.mark.parametrize("symbol", CLOSE_ONLY)
def test_close_only_series_have_flat_ohlc_and_zero_volume(
    every_series: pl.DataFrame, symbol: str
) -> None:
    series = every_series.filter(pl.col(SYMBOL) == symbol)

    assert (series[OPEN] == series[CLOSE]).all()
    assert (series[HIGH] == series[CLOSE]).all()
    assert (series[LOW] == series[CLOSE]).all()
    assert (series[VOLUME] == 0.0).all()
    assert series[ADJ_CLOSE].is_null().all()


@pytest.mark.parametrize("symbol", CLOSE_ONLY)
def test_close_only_series_loaded_alone_have_no_adj_close(symbol: str) -> None:
    assert load((symbol,)).columns == list(BAR_SCHEMA)


@pytest.mark.parametrize("symbol", ["SPX", "IXIC"])
def test_ohlcv_series_are_real_ohlc(every_series: pl.DataFrame, symbol: str) -> None:
    series = every_series.filter(pl.col(SYMBOL) == symbol)

    inconsistent = series.filter(
        (pl.col(HIGH) < pl.max_horizontal(OPEN, CLOSE))
        | (pl.col(LOW) > pl.min_horizontal(OPEN, CLOSE))
        | (pl.min_horizontal(OPEN, HIGH, LOW, CLOSE) <= 0)
    )
    assert inconsistent.is_empty()
    assert (series[VOLUME] >= 0).all()  # the NASDAQ file has a few zero-volume days


def test_no_value_is_missing_after_loading(every_series: pl.DataFrame) -> None:
    assert every_series.drop(ADJ_CLOSE).null_count().row(0) == (0,) * len(BAR_SCHEMA)
    assert not every_series.select(pl.col(CLOSE).is_nan().any()).item()


@pytest.mark.parametrize(
    ("start", "end", "rows", "first", "last"),
    [
        (utc(2018, 12, 24), None, 5, utc(2018, 12, 24), utc(2018, 12, 31)),
        (None, utc(1999, 1, 8), 5, utc(1999, 1, 4), utc(1999, 1, 8)),
        (utc(2008, 9, 15), utc(2008, 9, 19), 5, utc(2008, 9, 15), utc(2008, 9, 19)),
        (utc(2008, 9, 13), utc(2008, 9, 14), 0, None, None),  # a weekend
    ],
)
def test_start_and_end_filter_inclusively(
    start: datetime | None,
    end: datetime | None,
    rows: int,
    first: datetime | None,
    last: datetime | None,
) -> None:
    params = {k: v for k, v in {"start": start, "end": end}.items() if v is not None}
    frame = load(("SPX",), **params)

    assert frame.height == rows
    assert frame[TS].min() == first
    assert frame[TS].max() == last


def test_a_range_outside_a_series_gives_an_empty_canonical_frame() -> None:
    frame = load(("VIX",), end=utc(2000, 1, 1))

    assert frame.is_empty()
    assert frame.schema == BAR_SCHEMA


def test_an_unknown_symbol_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSymbolError) as caught:
        fetch_bars(["SPX", "AAPL"])

    message = str(caught.value)
    assert "'AAPL'" in message
    assert "SPX, IXIC, VIX, WTI" in message


def test_the_provider_follows_the_nyse_calendar_offline() -> None:
    assert sample.PROVIDER.calendar == "XNYS"
    assert sample.PROVIDER.network is False
    assert sample.PROVIDER.credentials == ()


def test_loading_does_not_import_the_arch_package() -> None:
    # A fresh interpreter: this test process may have imported arch elsewhere.
    script = textwrap.dedent(
        """
        import sys
        from engine.providers.sample import fetch_bars
        frame = fetch_bars(["SPX", "VIX"])
        assert frame.height == 5031 + 1259, frame.height
        print("arch.univariate" in sys.modules, "arch" in sys.modules)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    univariate_loaded, arch_loaded = completed.stdout.split()
    assert univariate_loaded == "False"
    assert arch_loaded == "False"
