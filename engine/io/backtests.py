"""Strategies, backtest runs, their results and live signals in Postgres.

A run row stores the exact spec (JSON) that reproduces it; results are one row per
(parameter set, symbol) with metrics and per-regime metrics as JSON, bulk-loaded with
COPY. Signals are upserted on (strategy, instrument, ts), so recomputing the same bar's
signal is idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
import polars as pl
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from engine.io.bars import instrument_ids
from engine.schema import SYMBOL, TS

__all__ = [
    "backtest_result_ids",
    "count_backtest_results",
    "count_backtest_runs",
    "count_strategies",
    "create_backtest_run",
    "delete_strategy",
    "find_backtest_runs",
    "finish_backtest_run",
    "get_strategy_row",
    "insert_strategy",
    "json_safe",
    "latest_signals",
    "link_backtest_run",
    "list_backtest_runs",
    "list_strategies",
    "load_backtest_result",
    "load_backtest_results",
    "load_backtest_run",
    "load_strategy",
    "page_backtest_results",
    "set_progress",
    "upsert_strategy",
    "write_backtest_results",
    "write_signals",
]

RunStatus = Literal["queued", "running", "succeeded", "failed"]


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, recursively; datetimes become ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def upsert_strategy(conn: psycopg.Connection, name: str, kind: str, spec: Mapping[str, Any]) -> int:
    """Create or update the named strategy; returns its id."""
    row = conn.execute(
        "INSERT INTO strategies (name, kind, spec) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec, "
        "updated_at = now() RETURNING id",
        (name, kind, Jsonb(json_safe(spec))),
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_strategy_row(conn: psycopg.Connection, name: str) -> tuple[int, str, dict[str, Any]] | None:
    """(id, kind, spec) of the named strategy, or None."""
    row = conn.execute("SELECT id, kind, spec FROM strategies WHERE name = %s", (name,)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), dict(row[2]))


def insert_strategy(
    conn: psycopg.Connection, name: str, kind: str, spec: Mapping[str, Any]
) -> int | None:
    """Create the named strategy; its id, or None when the name is taken (nothing changes)."""
    row = conn.execute(
        "INSERT INTO strategies (name, kind, spec) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO NOTHING RETURNING id",
        (name, kind, Jsonb(json_safe(spec))),
    ).fetchone()
    return None if row is None else int(row[0])


_STRATEGY_COLUMNS = "id, name, kind, spec, created_at, updated_at"


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def load_strategy(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """The named strategy: id, name, kind, spec, created_at, updated_at; or None."""
    cur = conn.execute(f"SELECT {_STRATEGY_COLUMNS} FROM strategies WHERE name = %s", (name,))
    rows = _dicts(cur)
    return rows[0] if rows else None


def list_strategies(
    conn: psycopg.Connection, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Stored strategies by name (the columns of `load_strategy`)."""
    cur = conn.execute(
        f"SELECT {_STRATEGY_COLUMNS} FROM strategies ORDER BY name LIMIT %s OFFSET %s",
        (limit, offset),
    )
    return _dicts(cur)


def count_strategies(conn: psycopg.Connection) -> int:
    """Number of stored strategies."""
    row = conn.execute("SELECT count(*) FROM strategies").fetchone()
    return int(row[0]) if row else 0


def delete_strategy(conn: psycopg.Connection, name: str) -> bool:
    """Delete the named strategy and its signals (its runs stay, unlinked); False if absent."""
    row = conn.execute("DELETE FROM strategies WHERE name = %s RETURNING id", (name,)).fetchone()
    return row is not None


def create_backtest_run(
    conn: psycopg.Connection,
    *,
    kind: str,
    spec: Mapping[str, Any],
    symbols: Sequence[str],
    strategy_id: int | None = None,
    status: RunStatus = "running",
) -> int:
    """A new `backtest_runs` row (running, started now unless queued); returns its id."""
    row = conn.execute(
        "INSERT INTO backtest_runs (strategy_id, kind, spec, symbols, status, started_at) "
        "VALUES (%s, %s, %s, %s, %s, CASE WHEN %s = 'running' THEN now() END) RETURNING id",
        (strategy_id, kind, Jsonb(json_safe(spec)), list(symbols), status, status),
    ).fetchone()
    assert row is not None
    return int(row[0])


def set_progress(conn: psycopg.Connection, run_id: int, progress: float) -> None:
    conn.execute(
        "UPDATE backtest_runs SET progress = %s WHERE id = %s",
        (min(max(progress, 0.0), 1.0), run_id),
    )


def finish_backtest_run(
    conn: psycopg.Connection, run_id: int, *, status: RunStatus, error: str | None = None
) -> None:
    conn.execute(
        "UPDATE backtest_runs SET status = %s, error = %s, finished_at = now(), "
        "progress = CASE WHEN %s = 'succeeded' THEN 1 ELSE progress END WHERE id = %s",
        (status, error, status, run_id),
    )


def _json_records(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    if not columns:
        return ["{}"] * frame.height
    rows = frame.select(columns).with_columns(pl.col(pl.Datetime).dt.to_string()).to_dicts()
    return [msgspec.json.encode(json_safe(r)).decode() for r in rows]


def write_backtest_results(
    conn: psycopg.Connection,
    run_id: int,
    metrics: pl.DataFrame,
    *,
    params: Sequence[str] = ("params",),
    regime_metrics: pl.DataFrame | None = None,
    equity: pl.DataFrame | None = None,
) -> int:
    """COPY one `backtest_results` row per (key, symbol) of `metrics`.

    `metrics`: key, symbol, `params` (JSON text of the full parameter set), metric columns
    (other non-metric columns are ignored if listed in `params`). `regime_metrics`: key,
    symbol, regime, metrics -> stored as {"<regime>": {metric: value}}. `equity`: key,
    symbol, ts, equity -> stored as [[iso ts, equity], ...] when given.
    """
    if metrics.is_empty():
        return 0
    skip = {"key", SYMBOL, *params}
    metric_columns = [c for c in metrics.columns if c not in skip]
    by_regime: dict[tuple[str, str], dict[str, Any]] = {}
    if regime_metrics is not None and not regime_metrics.is_empty():
        regime_columns = [c for c in regime_metrics.columns if c not in ("key", SYMBOL, "regime")]
        regime_rows = regime_metrics.with_columns(pl.col(pl.Datetime).dt.to_string()).to_dicts()
        for row in regime_rows:
            slot = by_regime.setdefault((row["key"], row[SYMBOL]), {})
            label = "unknown" if row["regime"] is None else str(row["regime"])
            slot[label] = {c: row[c] for c in regime_columns}
    curves: dict[tuple[str, str], list[list[Any]]] = {}
    if equity is not None and not equity.is_empty():
        for (key, symbol), part in equity.sort("key", SYMBOL, TS).group_by(
            ["key", SYMBOL], maintain_order=True
        ):
            curves[(str(key), str(symbol))] = [
                [ts.isoformat(), value]
                for ts, value in zip(part[TS].to_list(), part["equity"].to_list(), strict=True)
            ]
    metric_json = _json_records(metrics, metric_columns)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY backtest_results (run_id, symbol, params, metrics, regime_metrics, equity) "
            "FROM STDIN"
        ) as copy,
    ):
        rows = metrics.select("key", SYMBOL, "params").iter_rows()
        for index, (key, symbol, param_json) in enumerate(rows):
            pair = (key, symbol)
            regimes = msgspec.json.encode(json_safe(by_regime.get(pair, {}))).decode()
            curve = curves.get(pair)
            copy.write_row(
                (
                    run_id,
                    symbol,
                    param_json,
                    metric_json[index],
                    regimes,
                    None if curve is None else msgspec.json.encode(json_safe(curve)).decode(),
                )
            )
    return metrics.height


def load_backtest_run(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    """The run row as a dict (id, kind, spec, symbols, status, progress, error, times)."""
    cur = conn.execute(
        "SELECT id, strategy_id, kind, spec, symbols, status, progress, error, created_at, "
        "started_at, finished_at FROM backtest_runs WHERE id = %s",
        (run_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    names = [d.name for d in cur.description or ()]
    return dict(zip(names, row, strict=True))


def link_backtest_run(conn: psycopg.Connection, run_id: int, strategy_id: int) -> None:
    """Record that run `run_id` ran the stored strategy `strategy_id`."""
    conn.execute(
        "UPDATE backtest_runs SET strategy_id = %s WHERE id = %s AND EXISTS "
        "(SELECT 1 FROM strategies WHERE id = %s)",
        (strategy_id, run_id, strategy_id),
    )


def _run_filter(
    status: RunStatus | None, strategy: str | None, run_id: int | None = None
) -> sql.Composable:
    """WHERE clause of runs with `status` whose strategy kind or stored strategy is `strategy`."""
    where: list[sql.Composable] = [sql.SQL("true")]
    if run_id is not None:
        where.append(sql.SQL("r.id = {}").format(sql.Literal(run_id)))
    if status is not None:
        where.append(sql.SQL("r.status = {}").format(sql.Literal(status)))
    if strategy is not None:
        where.append(
            sql.SQL("(r.spec->>'strategy' = {0} OR st.name = {0})").format(sql.Literal(strategy))
        )
    return sql.SQL(" AND ").join(where)


def find_backtest_runs(
    conn: psycopg.Connection,
    *,
    status: RunStatus | None = None,
    strategy: str | None = None,
    run_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Newest runs first, optionally of one status and strategy (kind or stored name), or
    run `run_id`: id, kind, strategy (kind), strategy_name (stored), symbols, status,
    progress, error, created_at, started_at, finished_at, spec."""
    query = sql.SQL(
        "SELECT r.id, r.kind, r.spec->>'strategy' AS strategy, st.name AS strategy_name, "
        "r.symbols, r.status::text AS status, r.progress, r.error, r.created_at, r.started_at, "
        "r.finished_at, r.spec FROM backtest_runs r "
        "LEFT JOIN strategies st ON st.id = r.strategy_id "
        "WHERE {} ORDER BY r.id DESC LIMIT {} OFFSET {}"
    ).format(_run_filter(status, strategy, run_id), sql.Literal(limit), sql.Literal(offset))
    return _dicts(conn.execute(query))


def count_backtest_runs(
    conn: psycopg.Connection, *, status: RunStatus | None = None, strategy: str | None = None
) -> int:
    """Number of runs `find_backtest_runs` would list without a limit."""
    query = sql.SQL(
        "SELECT count(*) FROM backtest_runs r LEFT JOIN strategies st ON st.id = r.strategy_id "
        "WHERE {}"
    ).format(_run_filter(status, strategy))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def list_backtest_runs(
    conn: psycopg.Connection, *, limit: int = 50, offset: int = 0
) -> pl.DataFrame:
    """Newest runs first: id, kind, strategy, symbols, status, progress, created_at."""
    rows = conn.execute(
        "SELECT id, kind, spec->>'strategy', symbols, status, progress, error, created_at, "
        "finished_at FROM backtest_runs ORDER BY id DESC LIMIT %s OFFSET %s",
        (limit, offset),
    ).fetchall()
    schema = {
        "id": pl.Int64(),
        "kind": pl.String(),
        "strategy": pl.String(),
        "symbols": pl.List(pl.String()),
        "status": pl.String(),
        "progress": pl.Float64(),
        "error": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
        "finished_at": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def load_backtest_results(conn: psycopg.Connection, run_id: int) -> pl.DataFrame:
    """symbol, params (dict), metrics (dict), regime_metrics (dict) of a run's results."""
    rows = conn.execute(
        "SELECT symbol, params, metrics, regime_metrics FROM backtest_results "
        "WHERE run_id = %s ORDER BY id",
        (run_id,),
    ).fetchall()
    return pl.DataFrame(
        {
            SYMBOL: [r[0] for r in rows],
            "params": [msgspec.json.encode(r[1]).decode() for r in rows],
            "metrics": [msgspec.json.encode(r[2]).decode() for r in rows],
            "regime_metrics": [msgspec.json.encode(r[3]).decode() for r in rows],
        },
        schema={
            SYMBOL: pl.String,
            "params": pl.String,
            "metrics": pl.String,
            "regime_metrics": pl.String,
        },
    )


def _result_filter(run_id: int, symbol: str | None) -> sql.Composable:
    where = sql.SQL("run_id = {}").format(sql.Literal(run_id))
    if symbol is not None:
        where = sql.SQL("{} AND symbol = {}").format(where, sql.Literal(symbol))
    return where


def page_backtest_results(
    conn: psycopg.Connection,
    run_id: int,
    *,
    sort: str | None = None,
    descending: bool = False,
    symbol: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """One page of a run's results (id, symbol, params, metrics as dicts), in stored order or
    by the numeric metric `sort` (missing values last, ties by id)."""
    order: sql.Composable = sql.SQL("id")
    if sort is not None:
        value = sql.SQL(
            "CASE WHEN jsonb_typeof(metrics->{0}) = 'number' THEN (metrics->>{0})::float8 END"
        ).format(sql.Literal(sort))
        direction = sql.SQL("DESC" if descending else "ASC")
        order = sql.SQL("{} {} NULLS LAST, id").format(value, direction)
    query = sql.SQL(
        "SELECT id, symbol, params, metrics FROM backtest_results WHERE {} ORDER BY {} "
        "LIMIT {} OFFSET {}"
    ).format(_result_filter(run_id, symbol), order, sql.Literal(limit), sql.Literal(offset))
    return _dicts(conn.execute(query))


def count_backtest_results(
    conn: psycopg.Connection, run_id: int, *, symbol: str | None = None
) -> int:
    """Number of stored results of a run (of one symbol)."""
    query = sql.SQL("SELECT count(*) FROM backtest_results WHERE {}").format(
        _result_filter(run_id, symbol)
    )
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def backtest_result_ids(conn: psycopg.Connection, run_id: int, *, limit: int = 2) -> list[int]:
    """Ids of a run's first `limit` results (to tell a run with one result)."""
    rows = conn.execute(
        "SELECT id FROM backtest_results WHERE run_id = %s ORDER BY id LIMIT %s", (run_id, limit)
    ).fetchall()
    return [int(r[0]) for r in rows]


def load_backtest_result(
    conn: psycopg.Connection, run_id: int, result_id: int
) -> dict[str, Any] | None:
    """Result `result_id` of run `run_id`: id, symbol, params, metrics, regime_metrics (dicts)
    and equity ([[iso ts, equity], ...], or None when the run kept no curves)."""
    cur = conn.execute(
        "SELECT id, symbol, params, metrics, regime_metrics, equity FROM backtest_results "
        "WHERE run_id = %s AND id = %s",
        (run_id, result_id),
    )
    rows = _dicts(cur)
    return rows[0] if rows else None


def write_signals(conn: psycopg.Connection, strategy_id: int, signals: pl.DataFrame) -> int:
    """Upsert signals (symbol, ts, target, regime, regime_prob, context JSON text)."""
    if signals.is_empty():
        return 0
    ids = instrument_ids(conn, signals[SYMBOL].unique().to_list())
    rows = [
        (
            strategy_id,
            ids[row[SYMBOL]],
            row[TS],
            row["target"],
            row.get("regime"),
            row.get("regime_prob"),
            Jsonb(json_safe(msgspec.json.decode(row.get("context") or "{}"))),
        )
        for row in signals.iter_rows(named=True)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO signals (strategy_id, instrument_id, ts, target, regime, regime_prob, "
            "context) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (strategy_id, "
            "instrument_id, ts) DO UPDATE SET target = excluded.target, regime = "
            "excluded.regime, regime_prob = excluded.regime_prob, context = excluded.context",
            rows,
        )
    return len(rows)


def latest_signals(conn: psycopg.Connection, strategy: str | None = None) -> pl.DataFrame:
    """The newest signal per (strategy, symbol): strategy, symbol, ts, target, regime, ..."""
    rows = conn.execute(
        "SELECT DISTINCT ON (s.strategy_id, s.instrument_id) st.name, i.symbol, s.ts, s.target, "
        "s.regime, s.regime_prob, s.context::text FROM signals s "
        "JOIN strategies st ON st.id = s.strategy_id JOIN instruments i ON i.id = s.instrument_id "
        "WHERE %s::text IS NULL OR st.name = %s "
        "ORDER BY s.strategy_id, s.instrument_id, s.ts DESC",
        (strategy, strategy),
    ).fetchall()
    schema = {
        "strategy": pl.String(),
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        "target": pl.Float64(),
        "regime": pl.Int32(),
        "regime_prob": pl.Float64(),
        "context": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
