"""Regime runs and labels in Postgres: record a run, bulk-load its labels, read them back.

Labels are written with COPY (probabilities as a float8[] per bar); filtered and smoothed
labels are kept apart by `kind`, so a trading consumer can never read smoothed ones by
accident: `load_labels` defaults to filtered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from engine.io.bars import instrument_ids
from engine.schema import SYMBOL, TS

__all__ = [
    "create_run",
    "finish_run",
    "label_page",
    "latest_regimes",
    "latest_run_ids",
    "list_runs",
    "load_labels",
    "load_run",
    "regime_snapshot",
    "symbol_run_stats",
    "wide_labels",
    "write_labels",
]

LabelKind = Literal["filtered", "smoothed"]


def create_run(
    conn: psycopg.Connection,
    *,
    model: str,
    n_states: int,
    symbols: Sequence[str],
    params: dict[str, Any],
    interval: str = "1d",
) -> int:
    """A new `regime_runs` row in state running; returns its id."""
    row = conn.execute(
        "INSERT INTO regime_runs (model, n_states, interval, symbols, params, status) "
        "VALUES (%s, %s, %s, %s, %s, 'running') RETURNING id",
        (model, n_states, interval, list(symbols), Jsonb(params)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    *,
    status: Literal["succeeded", "failed"],
    stats: dict[str, Any] | None = None,
    error: str | None = None,
    train_start: Any = None,
    train_end: Any = None,
) -> None:
    """Close a run with its statistics (or the reason it failed)."""
    conn.execute(
        "UPDATE regime_runs SET status = %s, stats = %s, error = %s, train_start = %s, "
        "train_end = %s, finished_at = now() WHERE id = %s",
        (status, Jsonb(stats or {}), error, train_start, train_end, run_id),
    )


def write_labels(conn: psycopg.Connection, run_id: int, labels: pl.DataFrame) -> int:
    """COPY `labels` (symbol, ts, kind, regime, probs) into `regime_labels` for `run_id`."""
    if labels.is_empty():
        return 0
    ids = instrument_ids(conn, labels[SYMBOL].unique().to_list())
    lookup = pl.DataFrame({SYMBOL: list(ids), "instrument_id": list(ids.values())})
    rows = labels.join(lookup, on=SYMBOL).select(
        pl.lit(run_id).alias("run_id"),
        "instrument_id",
        TS,
        "kind",
        "regime",
        # float8[] literal, e.g. {0.93,0.07}
        pl.format(
            "{{{}}}", pl.col("probs").list.eval(pl.element().cast(pl.String)).list.join(",")
        ).alias("probs"),
    )
    payload = rows.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z")
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY regime_labels (run_id, instrument_id, ts, kind, regime, probs) "
            "FROM STDIN (FORMAT csv)"
        ) as copy,
    ):
        copy.write(payload.encode())
    return rows.height


def _latest_runs(model: str, symbols: Sequence[str]) -> sql.Composed:
    # the newest succeeded run of `model` per symbol
    return sql.SQL(
        "SELECT DISTINCT ON (i.id) i.id AS instrument_id, i.symbol, r.id AS run_id, r.n_states "
        "FROM instruments i JOIN regime_runs r ON i.symbol = ANY(r.symbols) "
        "WHERE r.model = {model} AND r.status = 'succeeded' AND i.symbol = ANY({symbols}) "
        "ORDER BY i.id, r.id DESC"
    ).format(model=sql.Literal(model), symbols=sql.Literal(list(symbols)))


def latest_run_ids(conn: psycopg.Connection, model: str, symbols: Sequence[str]) -> dict[str, int]:
    """Id of the newest succeeded run of `model` per symbol (symbols without one are absent)."""
    rows = conn.execute(
        sql.SQL("SELECT s.symbol, s.run_id FROM ({source}) s").format(
            source=_latest_runs(model, symbols)
        )
    ).fetchall()
    return {str(symbol): int(run_id) for symbol, run_id in rows}


_RUN_COLUMNS: Final = (
    "id, model, n_states, interval, symbols, status::text AS status, error, created_at, "
    "finished_at, train_start, train_end"
)


def _records(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def load_run(
    conn: psycopg.Connection, run_id: int, *, details: bool = True
) -> dict[str, Any] | None:
    """A run row as a dict: id, model, n_states, interval, symbols, status, error, times,
    and with `details` its params and stats (None if there is no such run)."""
    query = "SELECT {columns}, params, stats FROM regime_runs WHERE id = %s"
    if not details:
        query = "SELECT {columns} FROM regime_runs WHERE id = %s"
    cur = conn.execute(sql.SQL(query).format(columns=sql.SQL(_RUN_COLUMNS)), (run_id,))
    records = _records(cur)
    return records[0] if records else None


def list_runs(
    conn: psycopg.Connection,
    *,
    model: str | None = None,
    status: str | None = None,
    symbol: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Newest runs first (without params and stats), filtered; and how many match in all."""
    where = sql.SQL(
        "WHERE ({model}::text IS NULL OR model = {model}) "
        "AND ({status}::text IS NULL OR status::text = {status}) "
        "AND ({symbol}::text IS NULL OR {symbol} = ANY(symbols))"
    ).format(model=sql.Literal(model), status=sql.Literal(status), symbol=sql.Literal(symbol))
    total = conn.execute(sql.SQL("SELECT count(*) FROM regime_runs {}").format(where)).fetchone()
    cur = conn.execute(
        sql.SQL(
            "SELECT {columns} FROM regime_runs {where} ORDER BY id DESC LIMIT {limit} "
            "OFFSET {offset}"
        ).format(
            columns=sql.SQL(_RUN_COLUMNS),
            where=where,
            limit=sql.Literal(limit),
            offset=sql.Literal(offset),
        )
    )
    return _records(cur), int(total[0]) if total else 0


def symbol_run_stats(
    conn: psycopg.Connection, runs: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """Per symbol, from its run (`runs`: symbol -> run id): `run_id`, `n_states`, `model`
    (the fit's summary: transition matrix, means, variances, likelihood; empty if the run
    could not fit the symbol), `regimes` (realized statistics per regime) and `failure`
    (why the run could not fit the symbol, else None)."""
    if not runs:
        return {}
    rows = conn.execute(
        "SELECT s.symbol, r.id, r.n_states, r.stats -> 'symbols' -> s.symbol, "
        "(SELECT coalesce(jsonb_agg(e ORDER BY (e ->> 'regime')::int), '[]'::jsonb) "
        " FROM jsonb_array_elements(coalesce(r.stats -> 'regimes', '[]'::jsonb)) e "
        " WHERE e ->> 'symbol' = s.symbol), "
        "r.stats -> 'failures' ->> s.symbol "
        "FROM unnest(%s::text[], %s::bigint[]) AS s(symbol, run_id) "
        "JOIN regime_runs r ON r.id = s.run_id",
        (list(runs), list(runs.values())),
    ).fetchall()
    return {
        str(symbol): {
            "run_id": int(run_id),
            "n_states": int(n_states),
            "model": model or {},
            "regimes": regimes or [],
            "failure": failure,
        }
        for symbol, run_id, n_states, model, regimes, failure in rows
    }


def load_labels(
    conn: psycopg.Connection,
    model: str,
    symbols: Sequence[str],
    *,
    kind: LabelKind = "filtered",
    run_id: int | None = None,
) -> pl.DataFrame:
    """symbol, ts, regime, probs of the newest run of `model` per symbol (or of `run_id`)."""
    if run_id is None:
        source = _latest_runs(model, symbols)
    else:
        source = sql.SQL(
            "SELECT i.id AS instrument_id, i.symbol, r.id AS run_id, r.n_states FROM instruments i "
            "JOIN regime_runs r ON r.id = {run} WHERE i.symbol = ANY({symbols})"
        ).format(run=sql.Literal(run_id), symbols=sql.Literal(list(symbols)))
    query = sql.SQL(
        "SELECT s.symbol, l.ts, l.regime, l.probs FROM ({source}) s "
        "JOIN regime_labels l ON l.run_id = s.run_id AND l.instrument_id = s.instrument_id "
        "WHERE l.kind = {kind} ORDER BY s.symbol, l.ts"
    ).format(source=source, kind=sql.Literal(kind))
    cur = conn.execute(query)
    rows = cur.fetchall()
    schema: dict[str, pl.DataType] = {
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        "regime": pl.Int32(),
        "probs": pl.List(pl.Float64),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def label_page(
    conn: psycopg.Connection,
    run_id: int,
    symbol: str,
    *,
    kind: LabelKind = "filtered",
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[pl.DataFrame, int]:
    """One page of a symbol's labels in run `run_id` within [start, end] (ts, regime, probs;
    oldest first unless `newest_first`), and how many labels the window holds. Only the page
    is read, so the latest bar of a long history costs one index probe."""
    where = sql.SQL(
        "l.run_id = {run} AND l.kind = {kind} "
        "AND l.instrument_id = (SELECT id FROM instruments WHERE symbol = {symbol}) "
        "AND ({start}::timestamptz IS NULL OR l.ts >= {start}) "
        "AND ({end}::timestamptz IS NULL OR l.ts <= {end})"
    ).format(
        run=sql.Literal(run_id),
        kind=sql.Literal(kind),
        symbol=sql.Literal(symbol),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )
    total = conn.execute(
        sql.SQL("SELECT count(*) FROM regime_labels l WHERE {}").format(where)
    ).fetchone()
    rows = conn.execute(
        sql.SQL(
            "SELECT l.ts, l.regime, l.probs FROM regime_labels l WHERE {where} "
            "ORDER BY l.ts {order} LIMIT {limit} OFFSET {offset}"
        ).format(
            where=where,
            order=sql.SQL("DESC" if newest_first else "ASC"),
            limit=sql.Literal(limit),
            offset=sql.Literal(offset),
        )
    ).fetchall()
    schema: dict[str, pl.DataType] = {
        TS: pl.Datetime("us", "UTC"),
        "regime": pl.Int32(),
        "probs": pl.List(pl.Float64),
    }
    return pl.DataFrame(rows, schema=schema, orient="row"), int(total[0]) if total else 0


def latest_regimes(conn: psycopg.Connection, model: str, symbols: Sequence[str]) -> pl.DataFrame:
    """`regime_snapshot` computed in Postgres from the tail of each symbol's filtered labels
    (no full history is read), with the run each row comes from: symbol, ts, regime,
    probability, days_in_regime, run_id, n_states."""
    query = sql.SQL(
        "SELECT s.symbol, l.ts, l.regime, l.probs[l.regime + 1] AS probability, "
        "(SELECT count(*) FROM regime_labels c WHERE c.run_id = s.run_id "
        " AND c.instrument_id = s.instrument_id AND c.kind = 'filtered' AND c.ts > coalesce("
        "  (SELECT max(d.ts) FROM regime_labels d WHERE d.run_id = s.run_id "
        "   AND d.instrument_id = s.instrument_id AND d.kind = 'filtered' "
        "   AND d.regime <> l.regime), '-infinity')) AS days_in_regime, "
        "s.run_id, s.n_states "
        "FROM ({source}) s CROSS JOIN LATERAL ("
        " SELECT ts, regime, probs FROM regime_labels l WHERE l.run_id = s.run_id "
        " AND l.instrument_id = s.instrument_id AND l.kind = 'filtered' "
        " ORDER BY ts DESC LIMIT 1) l ORDER BY s.symbol"
    ).format(source=_latest_runs(model, symbols))
    schema: dict[str, pl.DataType] = {
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        "regime": pl.Int32(),
        "probability": pl.Float64(),
        "days_in_regime": pl.UInt32(),
        "run_id": pl.Int64(),
        "n_states": pl.Int32(),
    }
    return pl.DataFrame(conn.execute(query).fetchall(), schema=schema, orient="row")


def regime_snapshot(conn: psycopg.Connection, model: str, symbols: Sequence[str]) -> pl.DataFrame:
    """Per symbol: the current (last filtered) regime, its probability and days in it."""
    from engine.regimes.stats import current_regimes

    labels = load_labels(conn, model, symbols, kind="filtered")
    if labels.is_empty():
        return pl.DataFrame(
            schema=pl.Schema(
                {
                    SYMBOL: pl.String(),
                    TS: pl.Datetime("us", "UTC"),
                    "regime": pl.Int32(),
                    "probability": pl.Float64(),
                    "days_in_regime": pl.UInt32(),
                }
            )
        )
    return current_regimes(labels)


def wide_labels(labels: pl.DataFrame) -> pl.DataFrame:
    """Labels in the export layout: symbol, ts, regime, prob_0 .. prob_{K-1}."""
    width = labels["probs"].list.len().max()
    assert isinstance(width, int)
    fields = [f"prob_{i}" for i in range(width)]
    return labels.with_columns(pl.col("probs").list.to_struct(fields=fields)).unnest("probs")
