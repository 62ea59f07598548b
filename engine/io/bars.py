"""Bars in Postgres: idempotent bulk loads and fast reads into Polars.

Loads go through COPY. New data (no stored bar in the batch's range) is copied straight
into `bars`; otherwise it is copied into a temporary staging table and upserted, updating
only rows whose values changed, so loading the same data twice changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import polars as pl
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from engine.io.db import fetch_page
from engine.schema import ADJ_CLOSE, BAR_SCHEMA, CLOSE, HIGH, LOW, OPEN, REGIME, SYMBOL, TS, VOLUME

__all__ = [
    "bar_coverage",
    "bars_before",
    "count_bars",
    "create_instrument",
    "delete_provider_ttl",
    "describe_instruments",
    "ensure_instruments",
    "find_ingest_runs",
    "find_instruments",
    "get_ingest_run",
    "get_instrument",
    "instrument_ids",
    "instrument_providers",
    "last_bar_times",
    "list_instruments",
    "load_bars",
    "provider_ttls",
    "set_provider_ttl",
    "undescribed_instruments",
    "upsert_bars",
    "upsert_true_regimes",
]

_KEYS: Final = ("instrument_id", "interval", TS)
_BAR_COLUMNS: Final = (
    *_KEYS,
    OPEN,
    HIGH,
    LOW,
    CLOSE,
    VOLUME,
    ADJ_CLOSE,
    "provider",
)
_CSV_TS: Final = "%Y-%m-%dT%H:%M:%S%.6f%z"  # what we write to COPY
_PG_TS: Final = "%Y-%m-%d %H:%M:%S%.f%#z"  # what COPY TO prints with TimeZone = UTC


def ensure_instruments(
    conn: psycopg.Connection,
    instruments: Iterable[tuple[str, str | None]],
    provider: str,
    calendar: str | None = None,
) -> dict[str, int]:
    """Instrument ids by symbol, inserting `(symbol, name)` pairs not yet known."""
    rows = list(instruments)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO instruments (symbol, name, provider, calendar) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (symbol) DO NOTHING",
            [(symbol, name, provider, calendar) for symbol, name in rows],
        )
        cur.execute(
            "SELECT symbol, id FROM instruments WHERE symbol = ANY(%s)",
            ([symbol for symbol, _ in rows],),
        )
        return dict(cur.fetchall())


def instrument_ids(conn: psycopg.Connection, symbols: Sequence[str]) -> dict[str, int]:
    """Ids of stored instruments by symbol; a ValueError naming any that are unknown."""
    rows = conn.execute(
        "SELECT symbol, id FROM instruments WHERE symbol = ANY(%s)", (list(symbols),)
    ).fetchall()
    ids: dict[str, int] = dict(rows)
    unknown = sorted(set(symbols) - set(ids))
    if unknown:
        raise ValueError(f"unknown instrument(s): {unknown}")
    return ids


def list_instruments(conn: psycopg.Connection) -> pl.DataFrame:
    """Stored instruments with their bar counts and date range per interval."""
    cur = conn.execute(
        "SELECT i.symbol, i.name, i.provider, i.asset_class, b.interval, count(b.ts) AS bars, "
        "min(b.ts) AS first, max(b.ts) AS last FROM instruments i "
        "LEFT JOIN bars b ON b.instrument_id = i.id "
        "GROUP BY i.symbol, i.name, i.provider, i.asset_class, b.interval ORDER BY i.symbol"
    )
    names = [c.name for c in cur.description or []]
    return pl.DataFrame(cur.fetchall(), schema=names, orient="row")


def undescribed_instruments(conn: psycopg.Connection, symbols: Sequence[str]) -> list[str]:
    """Which of `symbols` are stored without a name (created by a load, not yet described)."""
    rows = conn.execute(
        "SELECT symbol FROM instruments WHERE symbol = ANY(%s) AND name IS NULL ORDER BY symbol",
        (list(symbols),),
    ).fetchall()
    return [symbol for (symbol,) in rows]


def describe_instruments(conn: psycopg.Connection, details: pl.DataFrame) -> int:
    """Fill name, asset class, exchange and currency from a canonical instrument frame."""
    if details.is_empty():
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE instruments SET name = %s, asset_class = coalesce(%s, asset_class), "
            "exchange = %s, currency = coalesce(%s, currency), updated_at = now() "
            "WHERE symbol = %s AND name IS NULL",
            [
                (r["name"], r["asset_class"], r["exchange"], r["currency"], r["symbol"])
                for r in details.iter_rows(named=True)
            ],
        )
        return cur.rowcount


def _csv(frame: pl.DataFrame) -> bytes:
    # Polars writes CSV in native code and Postgres parses it server-side: the fastest COPY
    # input we can produce without a per-row Python loop.
    return frame.write_csv(include_header=False, datetime_format=_CSV_TS, null_value="").encode()


def _copy(cur: psycopg.Cursor, table: str, columns: Sequence[str], payload: bytes) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        copy.write(payload)


def _with_ids(frame: pl.DataFrame, ids: dict[str, int]) -> pl.DataFrame:
    lookup = pl.DataFrame({SYMBOL: list(ids), "instrument_id": list(ids.values())})
    return frame.join(lookup, on=SYMBOL, how="inner")


def _load(
    cur: psycopg.Cursor, table: str, rows: pl.DataFrame, keys: Sequence[str], values: Sequence[str]
) -> int:
    """Insert or update `rows` (keyed by `keys`) in `table`; returns rows inserted or changed.

    New data goes straight in with COPY. If anything of these instruments is already stored
    in the batch's time range, rows go through a staging table and an upsert that only
    touches rows whose `values` differ, so loading the same data twice changes nothing.
    """
    payload = _csv(rows)
    if not _any_stored(cur, table, rows):
        try:
            with cur.connection.transaction():  # savepoint: a concurrent load may win the race
                _copy(cur, table, rows.columns, payload)
            return rows.height
        except psycopg.errors.UniqueViolation:
            pass
    stage = sql.Identifier(f"{table}_stage")
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(stage, sql.Identifier(table))
    )
    cur.execute(sql.SQL("TRUNCATE {}").format(stage))
    _copy(cur, f"{table}_stage", rows.columns, payload)
    columns = sql.SQL(", ").join(map(sql.Identifier, rows.columns))
    target = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(v)) for v in values)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(v)) for v in values)
    cur.execute(
        sql.SQL(
            "INSERT INTO {table} AS t ({columns}) SELECT {columns} FROM {stage} "
            "ON CONFLICT ({keys}) DO UPDATE SET {updates} "
            "WHERE ({target}) IS DISTINCT FROM ({incoming})"
        ).format(
            table=sql.Identifier(table),
            columns=columns,
            stage=stage,
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(v)) for v in values
            ),
            target=target,
            incoming=incoming,
        )
    )
    return cur.rowcount


def _any_stored(cur: psycopg.Cursor, table: str, rows: pl.DataFrame) -> bool:
    """Whether `table` holds any row of these instruments and interval in the batch's range."""
    lo, hi = rows.select(pl.col(TS).min().alias("lo"), pl.col(TS).max().alias("hi")).row(0)
    cur.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE instrument_id = ANY(%s) AND interval = %s "
            "AND ts BETWEEN %s AND %s)"
        ).format(sql.Identifier(table)),
        (rows["instrument_id"].unique().to_list(), rows["interval"][0], lo, hi),
    )
    found = cur.fetchone()
    return bool(found and found[0])


def upsert_bars(
    conn: psycopg.Connection,
    frame: pl.DataFrame,
    ids: dict[str, int],
    *,
    provider: str,
    interval: str = "1d",
) -> int:
    """Write `frame`'s bars inside the caller's transaction; returns rows inserted or changed."""
    if frame.is_empty():
        return 0
    if ADJ_CLOSE not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias(ADJ_CLOSE))
    rows = (
        _with_ids(frame, ids)
        .with_columns(pl.lit(interval).alias("interval"), pl.lit(provider).alias("provider"))
        .select(_BAR_COLUMNS)
    )
    with conn.cursor() as cur:
        return _load(cur, "bars", rows, _KEYS, _BAR_COLUMNS[3:])


def upsert_true_regimes(
    conn: psycopg.Connection, frame: pl.DataFrame, ids: dict[str, int], *, interval: str = "1d"
) -> int:
    """Store the simulator's true regimes for `frame`'s bars; returns rows written."""
    if REGIME not in frame.columns or frame.is_empty():
        return 0
    rows = (
        _with_ids(frame.select(SYMBOL, TS, REGIME), ids)
        .with_columns(pl.lit(interval).alias("interval"))
        .select(*_KEYS, REGIME)
    )
    with conn.cursor() as cur:
        return _load(cur, "true_regimes", rows, _KEYS, (REGIME,))


def last_bar_times(
    conn: psycopg.Connection, symbols: Sequence[str], interval: str
) -> dict[str, datetime]:
    """Timestamp of the latest stored bar per symbol (symbols with none are absent)."""
    rows = conn.execute(
        "SELECT i.symbol, (SELECT max(b.ts) FROM bars b WHERE b.instrument_id = i.id "
        "AND b.interval = %s) FROM instruments i WHERE i.symbol = ANY(%s)",
        (interval, list(symbols)),
    ).fetchall()
    return {symbol: ts for symbol, ts in rows if ts is not None}


def count_bars(conn: psycopg.Connection, symbols: Sequence[str], interval: str = "1d") -> int:
    """Number of stored bars for `symbols`."""
    row = conn.execute(
        "SELECT count(*) FROM bars b JOIN instruments i ON i.id = b.instrument_id "
        "WHERE i.symbol = ANY(%s) AND b.interval = %s",
        (list(symbols), interval),
    ).fetchone()
    return int(row[0]) if row else 0


def load_bars(
    conn: psycopg.Connection,
    symbols: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str = "1d",
) -> pl.DataFrame:
    """Canonical bars for `symbols` in [start, end], sorted by symbol and ts.

    Streams `COPY (SELECT ...) TO STDOUT` as CSV and parses it with Polars' native reader:
    no per-row Python work, which makes this the hot path every computation starts from.
    """
    where = [
        sql.SQL("i.symbol = ANY({})").format(sql.Literal(list(symbols))),
        sql.SQL("b.interval = {}").format(sql.Literal(interval)),
    ]
    if start is not None:
        where.append(sql.SQL("b.ts >= {}").format(sql.Literal(start)))
    if end is not None:
        where.append(sql.SQL("b.ts <= {}").format(sql.Literal(end)))
    query = sql.SQL(
        "COPY (SELECT i.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, b.adj_close "
        "FROM bars b JOIN instruments i ON i.id = b.instrument_id WHERE {} "
        "ORDER BY i.symbol, b.ts) TO STDOUT (FORMAT csv)"
    ).format(sql.SQL(" AND ").join(where))
    buffer = io.BytesIO()
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")  # COPY prints timestamps in the session zone
        with cur.copy(query) as copy:
            for chunk in copy:
                buffer.write(chunk)
    schema: dict[str, pl.DataType] = {**BAR_SCHEMA, ADJ_CLOSE: pl.Float64()}
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    frame = pl.read_csv(
        buffer,
        has_header=False,
        new_columns=list(schema),
        schema_overrides={**schema, TS: pl.String()},
    )
    return frame.with_columns(pl.col(TS).str.to_datetime(_PG_TS, time_unit="us", time_zone="UTC"))


# -- reads and writes the API needs (instruments, ingest runs, provider TTLs) ---------------

_INSTRUMENT_COLUMNS: Final = (
    "symbol, name, asset_class, exchange, currency, calendar, provider, is_active"
)


def _instrument_filter(
    search: str | None, asset_class: str | None
) -> tuple[sql.Composed, list[str]]:
    where = [sql.SQL("TRUE")]
    args: list[str] = []
    if search:
        where.append(
            sql.SQL(
                "(strpos(lower(symbol), lower(%s)) > 0 "
                "OR strpos(lower(coalesce(name, '')), lower(%s)) > 0)"
            )
        )
        args += [search, search]
    if asset_class:
        where.append(sql.SQL("asset_class = %s"))
        args.append(asset_class)
    return sql.SQL(" AND ").join(where), args


def find_instruments(
    conn: psycopg.Connection,
    *,
    search: str | None = None,
    asset_class: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of stored instruments by symbol (text in symbol or name, asset class) and
    how many match in all."""
    where, args = _instrument_filter(search, asset_class)
    return fetch_page(
        conn,
        "instruments",
        _INSTRUMENT_COLUMNS,
        where,
        args,
        order_by="symbol",
        limit=limit,
        offset=offset,
    )


def get_instrument(conn: psycopg.Connection, symbol: str) -> dict[str, Any] | None:
    """The stored instrument `symbol`, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM instruments WHERE symbol = %s").format(
                sql.SQL(_INSTRUMENT_COLUMNS)
            ),
            (symbol,),
        )
        return cur.fetchone()


def create_instrument(
    conn: psycopg.Connection,
    *,
    symbol: str,
    provider: str,
    name: str | None = None,
    asset_class: str = "equity",
    exchange: str | None = None,
    currency: str = "USD",
    calendar: str | None = None,
) -> bool:
    """Store a described instrument; False (nothing changed) if `symbol` is already stored."""
    row = conn.execute(
        "INSERT INTO instruments (symbol, name, asset_class, exchange, currency, calendar, "
        "provider) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (symbol) DO NOTHING "
        "RETURNING id",
        (symbol, name, asset_class, exchange, currency, calendar, provider),
    ).fetchone()
    return row is not None


def bar_coverage(conn: psycopg.Connection, symbols: Sequence[str]) -> list[dict[str, Any]]:
    """Bars stored per symbol and interval: count, first and last timestamp."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT i.symbol, b.interval, count(*) AS bars, min(b.ts) AS first, "
            "max(b.ts) AS last FROM instruments i JOIN bars b ON b.instrument_id = i.id "
            "WHERE i.symbol = ANY(%s) GROUP BY i.symbol, b.interval ORDER BY i.symbol, b.interval",
            (list(symbols),),
        )
        return cur.fetchall()


def bars_before(
    conn: psycopg.Connection, symbol: str, interval: str, before: datetime, count: int
) -> datetime | None:
    """Timestamp of the `count`-th stored bar of `symbol` before `before` (the start that
    gives a rolling computation `count` bars of warm-up), or None if fewer are stored."""
    if count <= 0:
        return before
    row = conn.execute(
        "SELECT b.ts FROM bars b JOIN instruments i ON i.id = b.instrument_id "
        "WHERE i.symbol = %s AND b.interval = %s AND b.ts < %s "
        "ORDER BY b.ts DESC OFFSET %s LIMIT 1",
        (symbol, interval, before, count - 1),
    ).fetchone()
    return row[0] if row else None


def instrument_providers(conn: psycopg.Connection, symbols: Sequence[str]) -> dict[str, str]:
    """The provider each stored symbol of `symbols` is loaded from (unknown ones are absent)."""
    rows = conn.execute(
        "SELECT symbol, provider FROM instruments WHERE symbol = ANY(%s)", (list(symbols),)
    ).fetchall()
    return dict(rows)


_INGEST_RUN_COLUMNS: Final = (
    "id, provider, dataset, interval, symbols, start_date, end_date, full_refresh, "
    "status::text AS status, rows_fetched, rows_upserted, rows_rejected, quality, error, "
    "started_at, finished_at"
)


def find_ingest_runs(
    conn: psycopg.Connection,
    *,
    provider: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of ingest runs, newest first, and how many match in all."""
    where = [sql.SQL("TRUE")]
    args: list[str] = []
    if provider:
        where.append(sql.SQL("provider = %s"))
        args.append(provider)
    if status:
        where.append(sql.SQL("status::text = %s"))
        args.append(status)
    return fetch_page(
        conn,
        "ingest_runs",
        _INGEST_RUN_COLUMNS,
        sql.SQL(" AND ").join(where),
        args,
        order_by="id DESC",
        limit=limit,
        offset=offset,
    )


def get_ingest_run(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    """The ingest run `run_id`, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM ingest_runs WHERE id = %s").format(
                sql.SQL(_INGEST_RUN_COLUMNS)
            ),
            (run_id,),
        )
        return cur.fetchone()


def provider_ttls(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[int, datetime]]:
    """TTL overrides stored in `provider_ttls`: (seconds, updated_at) by (provider, dataset)."""
    rows = conn.execute(
        "SELECT provider, dataset, ttl_seconds, updated_at FROM provider_ttls"
    ).fetchall()
    return {(provider, dataset): (int(ttl), updated) for provider, dataset, ttl, updated in rows}


def set_provider_ttl(conn: psycopg.Connection, provider: str, dataset: str, seconds: int) -> None:
    """Store the TTL of one provider dataset (it wins over settings and the default)."""
    conn.execute(
        "INSERT INTO provider_ttls (provider, dataset, ttl_seconds, updated_at) "
        "VALUES (%s, %s, %s, now()) ON CONFLICT (provider, dataset) "
        "DO UPDATE SET ttl_seconds = EXCLUDED.ttl_seconds, updated_at = now()",
        (provider, dataset, seconds),
    )


def delete_provider_ttl(conn: psycopg.Connection, provider: str, dataset: str) -> bool:
    """Forget a stored TTL (settings or the default apply again); whether one was stored."""
    cur = conn.execute(
        "DELETE FROM provider_ttls WHERE provider = %s AND dataset = %s", (provider, dataset)
    )
    return cur.rowcount > 0
