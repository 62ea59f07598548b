"""`files` provider: a researcher's own CSV or Parquet files.

`path` is a file or a folder of `.csv`/`.parquet` files. A file either has the canonical
columns (`symbol, ts, open, high, low, close, volume`) or holds one symbol and is named
`<SYMBOL>.csv|.parquet` without a symbol column. Other column names are mapped with
`mapping` (canonical=source, e.g. `ts=Date,close=Close`). Naive timestamps are taken as UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.errors import ProviderRequestError, ProviderResponseError, UnknownSymbolError
from engine.providers.standard.bars import BarsQuery
from engine.schema import BAR_SCHEMA, SYMBOL, TS, validate_bars

__all__ = ["ALL_SYMBOLS", "PROVIDER", "FilesBarsQuery", "parse_mapping"]

ALL_SYMBOLS: Final = "*"
_SUFFIXES: Final = (".csv", ".parquet")
_SOURCE_FILE: Final = "__source_file"


class FilesBarsQuery(BarsQuery, frozen=True, kw_only=True):
    """Bars from files: the standard query plus the path and the column mapping.

    `symbols=("*",)` loads every symbol the files hold.
    """

    path: str
    mapping: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [c for c, _ in self.mapping if c not in {*BAR_SCHEMA, "adj_close"}]
        if unknown:
            raise ValueError(
                f"--map names unknown canonical column(s) {unknown}; "
                f"use {', '.join([*BAR_SCHEMA, 'adj_close'])}"
            )


def parse_mapping(spec: str) -> tuple[tuple[str, str], ...]:
    """`"ts=Date,close=Close"` as ((canonical, source), ...)."""
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        canonical, sep, source = item.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise ValueError(f"--map entry {item!r} is not canonical=source (e.g. ts=Date)")
        pairs.append((canonical.strip(), source.strip()))
    return tuple(pairs)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
        if found:
            return found
        raise ProviderRequestError(f"files: no .csv or .parquet files in {path}")
    raise ProviderRequestError(f"files: {path} does not exist")


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema_length=10_000, try_parse_dates=False)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProviderResponseError(f"files: cannot read {path.name}: {first}") from None


def extract(query: FilesBarsQuery, context: ProviderContext) -> Raw:
    """Every file's rows as read (strings unparsed), each tagged with its file name."""
    frames = [
        _read(p).with_columns(pl.lit(p.name).alias(_SOURCE_FILE)) for p in _files(Path(query.path))
    ]
    return pl.concat(frames, how="diagonal_relaxed")


def _parse_ts(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return (
            column.dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else column.dt.convert_time_zone("UTC")
        )
    if dtype == pl.Date:
        return column.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_integer():  # YYYYMMDD dates, else epoch seconds or milliseconds
        as_date = column.cast(pl.String).str.to_date("%Y%m%d", strict=False)
        yyyymmdd = column.is_between(19_000_101, 21_001_231)
        epoch = (
            pl.when(column.abs() > 10**11)
            .then(column * 1000)
            .otherwise(column * 1_000_000)
            .cast(pl.Datetime("us", "UTC"))
        )
        return (
            pl.when(yyyymmdd & as_date.is_not_null())
            .then(as_date.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
            .otherwise(epoch)
        )
    return column.cast(pl.String).str.to_datetime(time_unit="us", time_zone="UTC")


def transform(query: FilesBarsQuery, raw: Raw) -> pl.DataFrame:
    """Canonical bars: columns mapped, symbol from the file name where absent, ts in UTC."""
    assert isinstance(raw, pl.DataFrame)
    mapping = dict(query.mapping)
    # a mapped source wins over a column that already has the canonical name
    replaced = [dst for dst, src in mapping.items() if dst in raw.columns and dst != src]
    frame = raw.drop(replaced).rename(
        {src: dst for dst, src in mapping.items() if src in raw.columns}
    )
    missing_sources = [src for src in mapping.values() if src not in raw.columns]
    if missing_sources:
        raise ProviderResponseError(
            f"files: --map names column(s) not in the files: {missing_sources}"
        )
    if SYMBOL not in frame.columns:
        frame = frame.with_columns(
            pl.col(_SOURCE_FILE).str.replace(r"\.(?i:csv|parquet)$", "").alias(SYMBOL)
        )
    missing = [c for c in BAR_SCHEMA if c not in frame.columns]
    if missing:
        have = [c for c in raw.columns if c != _SOURCE_FILE]
        raise ProviderResponseError(
            f"files: missing column(s) {missing}; the files have {have} "
            "(map them, e.g. --map ts=Date,close=Close)"
        )
    try:
        frame = frame.with_columns(_parse_ts(pl.col(TS), frame.schema[TS]).alias(TS))
    except pl.exceptions.PolarsError as exc:
        raise ProviderResponseError(
            f"files: cannot parse the ts column as dates: {str(exc).splitlines()[0]}"
        ) from None
    if query.symbols != (ALL_SYMBOLS,):
        absent = sorted(set(query.symbols) - set(frame[SYMBOL].unique().to_list()))
        if absent:
            raise UnknownSymbolError(f"files: no rows for symbol(s) {absent} in {query.path}")
        frame = frame.filter(pl.col(SYMBOL).is_in(query.symbols))
    frame = frame.filter(query.in_range())
    try:
        return validate_bars(frame)
    except ValueError as exc:
        raise ProviderResponseError(f"files: {exc}") from None


PROVIDER: Final = Provider(
    name="files",
    description="CSV/Parquet files or folders, canonical columns or one file per symbol",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=FilesBarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=0,
            max_symbols=None,
            intervals=("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1wk", "1mo"),
        )
    },
)
