"""Regime runs and labels in Postgres: record a run, bulk-load its labels, read them back.

Labels are written with COPY (probabilities as a float8[] per bar); filtered and smoothed
labels are kept apart by `kind`, so a trading consumer can never read smoothed ones by
accident: `load_labels` defaults to filtered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from engine.io.bars import instrument_ids
from engine.schema import SYMBOL, TS

__all__ = [
    "create_run",
    "finish_run",
    "load_labels",
    "regime_snapshot",
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
