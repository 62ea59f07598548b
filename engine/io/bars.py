"""Bars in Postgres: idempotent bulk upserts (COPY into staging, then one upsert)."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import psycopg

from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["count_bars", "ensure_instruments", "upsert_bars"]

_STAGE_COLUMNS = (SYMBOL, TS, OPEN, HIGH, LOW, CLOSE, VOLUME, ADJ_CLOSE)


def ensure_instruments(
    conn: psycopg.Connection, instruments: Iterable[tuple[str, str | None]], provider: str
) -> dict[str, int]:
    """Instrument ids by symbol, inserting `(symbol, name)` pairs not yet known."""
    rows = list(instruments)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO instruments (symbol, name, provider) VALUES (%s, %s, %s) "
            "ON CONFLICT (symbol) DO NOTHING",
            [(symbol, name, provider) for symbol, name in rows],
        )
        cur.execute(
            "SELECT symbol, id FROM instruments WHERE symbol = ANY(%s)",
            ([symbol for symbol, _ in rows],),
        )
        return dict(cur.fetchall())


def upsert_bars(
    conn: psycopg.Connection, frame: pl.DataFrame, *, provider: str, interval: str = "1d"
) -> int:
    """Insert or update `frame`'s bars in the caller's transaction; returns rows changed.

    Rows identical to what is stored are left alone, so re-running a load changes 0 rows.
    """
    frame = validate_bars(frame)
    if ADJ_CLOSE not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias(ADJ_CLOSE))
    ensure_instruments(conn, ((s, None) for s in frame[SYMBOL].unique().to_list()), provider)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bars_stage ("
            " symbol text, ts timestamptz, open float8, high float8, low float8,"
            " close float8, volume float8, adj_close float8) ON COMMIT DELETE ROWS"
        )
        # Polars writes the CSV in native code; Postgres parses it server-side in COPY.
        payload = frame.select(_STAGE_COLUMNS).write_csv(
            include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z", null_value=""
        )
        with cur.copy(
            f"COPY bars_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN (FORMAT csv)"
        ) as copy:
            copy.write(payload.encode())
        cur.execute(
            """
            INSERT INTO bars (instrument_id, interval, ts, open, high, low, close, volume,
                              adj_close, provider)
            SELECT i.id, %(interval)s, s.ts, s.open, s.high, s.low, s.close, s.volume,
                   s.adj_close, %(provider)s
            FROM bars_stage s JOIN instruments i ON i.symbol = s.symbol
            ON CONFLICT (instrument_id, interval, ts) DO UPDATE SET
                open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
                close = EXCLUDED.close, volume = EXCLUDED.volume,
                adj_close = EXCLUDED.adj_close, provider = EXCLUDED.provider,
                ingested_at = now()
            WHERE (bars.open, bars.high, bars.low, bars.close, bars.volume, bars.adj_close,
                   bars.provider)
               IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                                 EXCLUDED.volume, EXCLUDED.adj_close, EXCLUDED.provider)
            """,
            {"interval": interval, "provider": provider},
        )
        changed = cur.rowcount
        cur.execute("TRUNCATE bars_stage")
    return changed


def count_bars(conn: psycopg.Connection, symbols: list[str], interval: str = "1d") -> int:
    """Number of stored bars for `symbols`."""
    row = conn.execute(
        "SELECT count(*) FROM bars b JOIN instruments i ON i.id = b.instrument_id "
        "WHERE i.symbol = ANY(%s) AND b.interval = %s",
        (symbols, interval),
    ).fetchone()
    return int(row[0]) if row else 0
