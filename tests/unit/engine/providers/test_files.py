"""The files provider: a researcher's CSV/Parquet files read into canonical bars.

Every test writes its files into `tmp_path` and runs the provider's two stages (extract,
transform) the way the ingest pipeline does.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.providers import files
from engine.providers.base import ProviderContext
from engine.providers.errors import (
    ProviderRequestError,
    ProviderResponseError,
    UnknownSymbolError,
)
from engine.providers.files import ALL_SYMBOLS, FilesBarsQuery, parse_mapping
from engine.schema import ADJ_CLOSE, BAR_SCHEMA, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

HEADER = "symbol,ts,open,high,low,close,volume"
YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
YAHOO_MAPPING = "ts=Date,open=Open,high=High,low=Low,close=Close,adj_close=Adj Close,volume=Volume"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def ohlcv_parquet(path: Path, ts: list[Any] | pl.Series, **extra: Any) -> Path:
    """A one-symbol Parquet file (no symbol column) with the given timestamps."""
    n = len(ts)
    pl.DataFrame(
        {
            TS: ts,
            OPEN: [10.0 + i for i in range(n)],
            HIGH: [12.0 + i for i in range(n)],
            LOW: [9.0 + i for i in range(n)],
            CLOSE: [11.0 + i for i in range(n)],
            VOLUME: [1_000 * (i + 1) for i in range(n)],
            **extra,
        }
    ).write_parquet(path)
    return path


def load(path: Path, symbols: tuple[str, ...] = (ALL_SYMBOLS,), **params: Any) -> pl.DataFrame:
    query = FilesBarsQuery(symbols=symbols, path=str(path), **params)
    return files.transform(query, files.extract(query, ProviderContext()))


@pytest.fixture
def canonical_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path / "bars.csv",
        HEADER,
        "SPY,2024-01-02,470.0,473.5,469.1,472.6,1000",
        "SPY,2024-01-03,471.0,472.0,466.5,468.8,1200",
        "SPY,2024-01-04,468.5,470.9,467.0,467.3,900",
        "QQQ,2024-01-02,405.0,407.1,401.2,402.9,500",
        "QQQ,2024-01-03,401.0,402.2,398.7,399.5,600",
        "QQQ,2024-01-04,399.9,401.6,397.8,398.1,700",
    )


@pytest.fixture
def per_symbol_folder(tmp_path: Path) -> Path:
    """`SPY.csv` and `QQQ.parquet`, neither with a symbol column, plus a file to ignore."""
    folder = tmp_path / "bars"
    folder.mkdir()
    write(
        folder / "SPY.csv",
        "ts,open,high,low,close,volume",
        "2024-01-02,470.0,473.5,469.1,472.6,1000",
        "2024-01-03,471.0,472.0,466.5,468.8,1200",
    )
    ohlcv_parquet(folder / "QQQ.parquet", [datetime(2024, 1, 2), datetime(2024, 1, 3)])
    write(folder / "README.txt", "not data")
    return folder


# --- canonical files -----------------------------------------------------------------------


def test_a_canonical_csv_loads_with_canonical_dtypes(canonical_csv: Path) -> None:
    frame = load(canonical_csv)

    assert frame.schema == BAR_SCHEMA
    assert frame.height == 6
    assert frame.row(0) == ("SPY", utc(2024, 1, 2), 470.0, 473.5, 469.1, 472.6, 1000.0)


def test_rows_keep_the_files_order(canonical_csv: Path) -> None:
    frame = load(canonical_csv)

    assert frame[SYMBOL].to_list() == ["SPY"] * 3 + ["QQQ"] * 3


def test_adj_close_is_kept_when_the_file_has_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "adj.csv",
        f"{HEADER},adj_close,dividend",
        "SPY,2024-01-02,470.0,473.5,469.1,472.6,1000,470.1,0.0",
    )

    frame = load(path)

    assert frame.columns == [*BAR_SCHEMA, ADJ_CLOSE]
    assert frame[ADJ_CLOSE].to_list() == [470.1]


def test_a_canonical_parquet_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pl.DataFrame(
        {
            SYMBOL: ["SPY", "QQQ"],
            TS: [utc(2024, 1, 2), utc(2024, 1, 2)],
            OPEN: [1.0, 2.0],
            HIGH: [1.5, 2.5],
            LOW: [0.5, 1.5],
            CLOSE: [1.2, 2.2],
            VOLUME: [10, 20],
        }
    ).write_parquet(path)

    frame = load(path)

    assert frame.schema == BAR_SCHEMA
    assert frame[SYMBOL].to_list() == ["SPY", "QQQ"]


# --- one file per symbol --------------------------------------------------------------


def test_a_folder_of_per_symbol_files_takes_symbols_from_file_names(
    per_symbol_folder: Path,
) -> None:
    frame = load(per_symbol_folder)

    assert frame.schema == BAR_SCHEMA
    assert sorted(frame[SYMBOL].unique().to_list()) == ["QQQ", "SPY"]
    assert frame.filter(pl.col(SYMBOL) == "QQQ")[CLOSE].to_list() == [11.0, 12.0]
    assert frame.filter(pl.col(SYMBOL) == "SPY")[CLOSE].to_list() == [472.6, 468.8]
    assert frame.filter(pl.col(SYMBOL) == "QQQ")[TS].to_list() == [
        utc(2024, 1, 2),
        utc(2024, 1, 3),
    ]


def test_a_single_per_symbol_file_takes_its_symbol_from_its_name(tmp_path: Path) -> None:
    path = write(tmp_path / "BRK.B.CSV", "ts,open,high,low,close,volume", "2024-01-02,1,2,1,2,3")

    assert load(path)[SYMBOL].to_list() == ["BRK.B"]


def test_other_file_types_in_the_folder_are_ignored(per_symbol_folder: Path) -> None:
    assert load(per_symbol_folder).height == 4


# --- column mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ts=Date,close=Close", (("ts", "Date"), ("close", "Close"))),
        (" ts = Date , close = Adj Close ", (("ts", "Date"), ("close", "Adj Close"))),
        ("ts=Date,,", (("ts", "Date"),)),
        ("", ()),
    ],
)
def test_parse_mapping(spec: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_mapping(spec) == expected


@pytest.mark.parametrize("spec", ["ts", "ts=", "=Date", "ts:Date"])
def test_parse_mapping_rejects_entries_that_are_not_canonical_equals_source(spec: str) -> None:
    with pytest.raises(ValueError, match=r"is not canonical=source \(e\.g\. ts=Date\)"):
        parse_mapping(spec)


def test_a_partial_mapping_renames_only_the_named_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SPY.csv",
        "Date,open,high,low,Close,volume",
        "2024-01-02,470.0,473.5,469.1,472.6,1000",
    )

    frame = load(path, mapping=parse_mapping("ts=Date,close=Close"))

    assert frame.row(0) == ("SPY", utc(2024, 1, 2), 470.0, 473.5, 469.1, 472.6, 1000.0)


def test_a_yahoo_style_export_loads_with_a_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path / "AAPL.csv",
        YAHOO_HEADER,
        "2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700",
        "2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500",
    )

    frame = load(path, mapping=parse_mapping(YAHOO_MAPPING))

    assert frame.columns == [*BAR_SCHEMA, ADJ_CLOSE]
    assert frame.row(0) == (
        "AAPL",
        utc(2024, 1, 2),
        187.15,
        188.44,
        183.89,
        185.64,
        82488700.0,
        184.94,
    )


def test_a_mapped_symbol_column_is_used(tmp_path: Path) -> None:
    path = write(
        tmp_path / "export.csv",
        "Ticker,Date,open,high,low,close,volume",
        "SPY,2024-01-02,1,2,1,2,3",
        "QQQ,2024-01-02,1,2,1,2,3",
    )

    frame = load(path, mapping=parse_mapping("symbol=Ticker,ts=Date"))

    assert frame[SYMBOL].to_list() == ["SPY", "QQQ"]


def test_an_unknown_canonical_name_in_the_mapping_fails_at_query_construction(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"unknown canonical column\(s\) \['price'\]") as caught:
        FilesBarsQuery(
            symbols=(ALL_SYMBOLS,), path=str(tmp_path), mapping=parse_mapping("price=Close")
        )

    assert "symbol, ts, open, high, low, close, volume, adj_close" in str(caught.value)


def test_a_mapped_source_column_absent_from_the_files_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", YAHOO_HEADER, "2024-01-02,1,2,1,2,2,3")

    with pytest.raises(ProviderResponseError, match=r"not in the files: \['Datum'\]"):
        load(path, mapping=parse_mapping("ts=Datum,close=Close"))


def test_a_mapped_column_replaces_a_same_named_canonical_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SPY.csv",
        "ts,open,high,low,close,adj_close,volume",
        "2024-01-02,470.0,473.5,469.1,472.6,470.1,1000",
    )

    frame = load(path, mapping=parse_mapping("close=adj_close"))

    assert frame[CLOSE].to_list() == [470.1]


# --- missing columns -----------------------------------------------------------------------


def test_missing_columns_are_listed_with_the_columns_present_and_a_map_hint(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "AAPL.csv", YAHOO_HEADER, "2024-01-02,1,2,1,2,2,3")

    with pytest.raises(ProviderResponseError) as caught:
        load(path)

    message = str(caught.value)
    assert "missing column(s) ['ts', 'open', 'high', 'low', 'close', 'volume']" in message
    assert (
        "the files have ['Date', 'Open', 'High', 'Low', 'Close', 'Adj Close', 'Volume']" in message
    )
    assert "--map ts=Date,close=Close" in message
    assert "__source_file" not in message


def test_a_single_missing_column_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close", "2024-01-02,1,2,1,2")

    with pytest.raises(ProviderResponseError, match=r"missing column\(s\) \['volume'\]"):
        load(path)


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_ts", "expected"),
    [
        ("2024-01-02", utc(2024, 1, 2)),
        ("2024-01-02 09:30:00", utc(2024, 1, 2, 9, 30)),
        ("2024-01-02T09:30:00", utc(2024, 1, 2, 9, 30)),
        ("2024-01-02T09:30:00-05:00", utc(2024, 1, 2, 14, 30)),
        ("2024-01-02T09:30:00+01:00", utc(2024, 1, 2, 8, 30)),
        ("2024-01-02T14:30:00Z", utc(2024, 1, 2, 14, 30)),
        ("1704153600", utc(2024, 1, 2)),  # epoch seconds
        ("1704153600000", utc(2024, 1, 2)),  # epoch milliseconds
        ("1704205800", utc(2024, 1, 2, 14, 30)),
        ("1704205800000", utc(2024, 1, 2, 14, 30)),
    ],
)
def test_csv_timestamps_become_utc(tmp_path: Path, raw_ts: str, expected: datetime) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close,volume", f"{raw_ts},1,2,1,2,3")

    frame = load(path)

    assert frame.schema[TS] == pl.Datetime("us", "UTC")
    assert frame[TS].to_list() == [expected]


def test_offsets_that_differ_row_to_row_are_each_converted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SPY.csv",
        "ts,open,high,low,close,volume",
        "2024-03-08T09:30:00-05:00,1,2,1,2,3",  # EST
        "2024-03-11T09:30:00-04:00,1,2,1,2,3",  # EDT, after the DST change
    )

    assert load(path)[TS].to_list() == [utc(2024, 3, 8, 14, 30), utc(2024, 3, 11, 13, 30)]


def test_a_date_typed_parquet_column_becomes_midnight_utc(tmp_path: Path) -> None:
    path = ohlcv_parquet(tmp_path / "DIA.parquet", [date(2024, 1, 2), date(2024, 1, 3)])

    frame = load(path)

    assert frame.schema[TS] == pl.Datetime("us", "UTC")
    assert frame[TS].to_list() == [utc(2024, 1, 2), utc(2024, 1, 3)]


def test_a_mapped_date_typed_parquet_column_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "DIA.parquet"
    ohlcv_parquet(path, [date(2024, 1, 2)])
    pl.read_parquet(path).rename({TS: "Date"}).write_parquet(path)

    assert load(path, mapping=parse_mapping("ts=Date"))[TS].to_list() == [utc(2024, 1, 2)]


def test_a_naive_parquet_datetime_is_taken_as_utc(tmp_path: Path) -> None:
    path = ohlcv_parquet(
        tmp_path / "SPY.parquet",
        pl.Series([datetime(2024, 1, 2, 9, 30)]).cast(pl.Datetime("ms")),
    )

    assert load(path)[TS].to_list() == [utc(2024, 1, 2, 9, 30)]


def test_a_zoned_parquet_datetime_is_converted_to_utc(tmp_path: Path) -> None:
    new_york = pl.Series([datetime(2024, 1, 2, 9, 30)]).dt.replace_time_zone("America/New_York")
    path = ohlcv_parquet(tmp_path / "SPY.parquet", new_york)

    frame = load(path)

    assert frame.schema[TS] == pl.Datetime("us", "UTC")
    assert frame[TS].to_list() == [utc(2024, 1, 2, 14, 30)]


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (1_704_153_600, utc(2024, 1, 2)),
        (1_704_153_600_000, utc(2024, 1, 2)),
        (0, utc(1970, 1, 1)),
    ],
)
def test_integer_epochs_in_parquet_are_seconds_or_milliseconds(
    tmp_path: Path, epoch: int, expected: datetime
) -> None:
    path = ohlcv_parquet(tmp_path / "SPY.parquet", pl.Series([epoch], dtype=pl.Int64))

    assert load(path)[TS].to_list() == [expected]


def test_an_unparseable_ts_is_a_response_error(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close,volume", "yesterday,1,2,1,2,3")

    with pytest.raises(ProviderResponseError, match="cannot parse the ts column as dates"):
        load(path)


def test_a_ts_column_mixing_formats_is_a_response_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SPY.csv",
        "ts,open,high,low,close,volume",
        "2024-01-02T09:30:00-05:00,1,2,1,2,3",
        "2024-01-03 09:30:00,1,2,1,2,3",
    )

    with pytest.raises(ProviderResponseError, match="cannot parse the ts column"):
        load(path)


def test_integer_yyyymmdd_dates_are_never_silently_read_as_1970(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close,volume", "20240102,1,2,1,2,3")

    try:
        frame = load(path)
    except ProviderResponseError:
        return  # refusing the column is an acceptable fix too
    assert frame[TS].to_list() == [utc(2024, 1, 2)]


# --- symbols and range --------------------------------------------------------------------


def test_only_the_requested_symbols_are_returned(canonical_csv: Path) -> None:
    frame = load(canonical_csv, symbols=("QQQ",))

    assert frame[SYMBOL].unique().to_list() == ["QQQ"]
    assert frame.height == 3


def test_requested_symbols_select_per_symbol_files(per_symbol_folder: Path) -> None:
    assert load(per_symbol_folder, symbols=("SPY",))[SYMBOL].to_list() == ["SPY", "SPY"]


def test_star_loads_every_symbol(canonical_csv: Path) -> None:
    frame = load(canonical_csv, symbols=("*",))

    assert set(frame[SYMBOL].to_list()) == {"SPY", "QQQ"}
    assert frame.height == 6


def test_a_requested_symbol_absent_from_the_files_is_an_unknown_symbol_error(
    canonical_csv: Path,
) -> None:
    with pytest.raises(UnknownSymbolError, match=r"no rows for symbol\(s\) \['IWM'\]") as caught:
        load(canonical_csv, symbols=("SPY", "IWM"))

    assert str(canonical_csv) in str(caught.value)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (utc(2024, 1, 3), None, [3, 4]),
        (None, utc(2024, 1, 3), [2, 3]),
        (utc(2024, 1, 3), utc(2024, 1, 3), [3]),
        (utc(2023, 1, 1), utc(2025, 1, 1), [2, 3, 4]),
        (utc(2024, 2, 1), None, []),
    ],
)
def test_start_and_end_filter_inclusively(
    canonical_csv: Path, start: datetime | None, end: datetime | None, days: list[int]
) -> None:
    frame = load(canonical_csv, symbols=("SPY",), start=start, end=end)

    assert frame[TS].dt.day().to_list() == days
    assert frame.schema == BAR_SCHEMA


def test_start_compares_instants_not_wall_clock_times(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SPY.csv",
        "ts,open,high,low,close,volume",
        "2024-01-02T09:30:00-05:00,1,2,1,2,3",  # 14:30 UTC
        "2024-01-02T10:30:00-05:00,1,2,1,2,3",  # 15:30 UTC
    )

    frame = load(path, start=utc(2024, 1, 2, 15))

    assert frame[TS].to_list() == [utc(2024, 1, 2, 15, 30)]


# --- request and response errors --------------------------------------------------------


def test_a_nonexistent_path_is_a_request_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(ProviderRequestError, match=rf"{missing} does not exist"):
        load(missing)


def test_a_folder_without_csv_or_parquet_files_is_a_request_error(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "hello")
    (tmp_path / "sub.csv").mkdir()  # a folder named like a data file is not a file

    with pytest.raises(ProviderRequestError, match=r"no \.csv or \.parquet files in"):
        load(tmp_path)


def test_an_empty_folder_is_a_request_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderRequestError, match=r"no \.csv or \.parquet files"):
        load(tmp_path)


def test_ragged_csv_rows_are_a_response_error_naming_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ragged.csv",
        HEADER,
        "SPY,2024-01-02,1,2,1,2,3",
        "SPY,2024-01-03,1,2,1,2,3,4,5",
    )

    with pytest.raises(ProviderResponseError, match=r"cannot read ragged\.csv"):
        load(path)


def test_binary_garbage_is_a_response_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 16)

    with pytest.raises(ProviderResponseError, match=r"cannot read garbage\.csv"):
        load(path)


def test_a_corrupt_parquet_file_is_a_response_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")

    with pytest.raises(ProviderResponseError, match=r"cannot read broken\.parquet"):
        load(path)


def test_an_empty_csv_file_is_a_response_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(ProviderResponseError, match=r"cannot read empty\.csv"):
        load(path)


def test_a_bad_file_in_a_folder_is_named(per_symbol_folder: Path) -> None:
    (per_symbol_folder / "IWM.parquet").write_bytes(b"garbage")

    with pytest.raises(ProviderResponseError, match=r"IWM\.parquet"):
        load(per_symbol_folder)


def test_non_numeric_prices_are_a_response_error(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close,volume", "2024-01-02,1,2,1,n/a,3")

    with pytest.raises(ProviderResponseError, match=r"files: .*wrong type.*'close'"):
        load(path)


def test_errors_do_not_chain_polars_tracebacks(tmp_path: Path) -> None:
    path = write(tmp_path / "SPY.csv", "ts,open,high,low,close,volume", "yesterday,1,2,1,2,3")

    with pytest.raises(ProviderResponseError) as caught:
        load(path)

    assert caught.value.__cause__ is None
    assert "\n" not in str(caught.value)


# --- provider wiring -----------------------------------------------------------------------


def test_the_provider_loads_whole_requests_without_caching() -> None:
    fetcher = files.PROVIDER.fetcher("bars")

    assert fetcher.query_type is FilesBarsQuery
    assert fetcher.default_ttl == 0
    assert fetcher.max_symbols is None
    assert "1m" in fetcher.intervals and "1d" in fetcher.intervals


def test_extract_tags_rows_with_their_file_and_transform_drops_the_tag(
    per_symbol_folder: Path,
) -> None:
    query = FilesBarsQuery(symbols=(ALL_SYMBOLS,), path=str(per_symbol_folder))
    raw = files.extract(query, ProviderContext())

    assert isinstance(raw, pl.DataFrame)
    assert sorted(raw["__source_file"].unique().to_list()) == ["QQQ.parquet", "SPY.csv"]
    assert_frame_equal(
        files.transform(query, raw).sort(SYMBOL, TS),
        load(per_symbol_folder).sort(SYMBOL, TS),
    )
    assert "__source_file" not in files.transform(query, raw).columns
