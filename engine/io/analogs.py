"""Market states in Postgres (pgvector): binary COPY in and out, the HNSW index, searches.

`market_states` holds one `vector(32)` per (instrument, embedding version, bar). Writes go
through binary COPY built with NumPy (no per-row Python), into a temporary table and then
one `INSERT ... ON CONFLICT` so a re-run replaces rather than duplicates. Reads for the
exact search come back the same way, straight into a float32 matrix.

The HNSW index (`vector_l2_ops`: Euclidean distance) is managed here rather than in
`schema.prisma`, because Prisma cannot express HNSW indexes (a migration creating one
shows up as drift) and because a bulk load is much faster with the index built after it.
Approximate searches use pgvector 0.8's iterative index scan, so filters (version, date
cut-off, universe) do not starve the result of rows.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from engine.analogs.embedding import DIMENSION, EMBEDDING
from engine.io.db import vector_literal
from engine.schema import SYMBOL, TS

__all__ = [
    "HNSW_INDEX",
    "StateMatrix",
    "create_index",
    "drop_index",
    "has_index",
    "has_states",
    "hnsw_neighbors",
    "last_state_times",
    "load_state_matrix",
    "state_at",
    "state_counts",
    "symbols_with_bars",
    "write_states",
]

HNSW_INDEX: Final = "market_states_embedding_hnsw"
DISTANCE: Final = "distance"
INSTRUMENT_ID: Final = "instrument_id"

_PG_EPOCH_US: Final = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER: Final = b"\xff\xff"
_VECTOR_BYTES: Final = 4 + 4 * DIMENSION  # int16 dim, int16 unused, float4 * dim


def _vector_fields() -> list[tuple[str, str] | tuple[str, str, tuple[int]]]:
    return [("vlen", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (DIMENSION,))]


def _copy_rows(ids: np.ndarray, ts_us: np.ndarray, version: bytes, vectors: np.ndarray) -> bytes:
    """PGCOPY binary payload of (instrument_id, ts, version, embedding) rows."""
    dtype = np.dtype(
        [
            ("nfields", ">i2"),
            ("idlen", ">i4"),
            ("id", ">i4"),
            ("tslen", ">i4"),
            ("ts", ">i8"),
            ("verlen", ">i4"),
            ("ver", f"S{len(version)}"),
            *_vector_fields(),
        ]
    )
    rows = np.empty(len(ids), dtype=dtype)
    rows["nfields"] = 4
    rows["idlen"], rows["id"] = 4, ids
    rows["tslen"], rows["ts"] = 8, ts_us - _PG_EPOCH_US
    rows["verlen"], rows["ver"] = len(version), version
    rows["vlen"], rows["dim"], rows["unused"] = _VECTOR_BYTES, DIMENSION, 0
    rows["vec"] = vectors
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def write_states(
    conn: psycopg.Connection, states: pl.DataFrame, ids: dict[str, int], version: str
) -> int:
    """Upsert `states` (symbol, ts, embedding) as `version`; returns rows written.

    One transaction: a failure leaves the table as it was.
    """
    if states.is_empty():
        return 0
    missing = sorted(set(states[SYMBOL].unique().to_list()) - set(ids))
    if missing:
        raise ValueError(f"no instrument id for {missing}")
    id_column = states[SYMBOL].replace_strict(ids, return_dtype=pl.Int32).to_numpy()
    ts_us = states[TS].dt.convert_time_zone("UTC").dt.epoch("us").to_numpy()
    vectors = states[EMBEDDING].to_numpy().astype(np.float32, copy=False)
    payload = _copy_rows(id_column, ts_us, version.encode(), vectors)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE market_states_load "
            "(instrument_id int4, ts timestamptz, version text, embedding vector(32))"
        )
        with cur.copy("COPY market_states_load FROM STDIN (FORMAT binary)") as copy:
            for start in range(0, len(payload), 1 << 24):
                copy.write(payload[start : start + (1 << 24)])
        cur.execute(
            "INSERT INTO market_states (instrument_id, ts, version, embedding) "
            "SELECT instrument_id, ts, version, embedding FROM market_states_load "
            "ON CONFLICT (instrument_id, version, ts) DO UPDATE SET embedding = EXCLUDED.embedding"
        )
        written = cur.rowcount
        cur.execute("DROP TABLE market_states_load")  # ON COMMIT would miss a savepoint
        return written


def has_index(conn: psycopg.Connection) -> bool:
    """Whether the HNSW index exists."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HNSW_INDEX,)).fetchone()
    return bool(row and row[0])


def create_index(
    conn: psycopg.Connection, *, m: int = 16, ef_construction: int = 64, memory: str = "1GB"
) -> None:
    """Build the HNSW index (L2) on `market_states.embedding` if it is missing."""
    if not (2 <= m <= 100 and 4 <= ef_construction <= 1000 and ef_construction >= 2 * m):
        raise ValueError("need 2 <= m <= 100 and 2*m <= ef_construction <= 1000")
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(memory)))
        conn.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON market_states USING hnsw (embedding "
                "vector_l2_ops) WITH (m = {}, ef_construction = {})"
            ).format(sql.Identifier(HNSW_INDEX), sql.Literal(m), sql.Literal(ef_construction))
        )


def drop_index(conn: psycopg.Connection) -> None:
    """Drop the HNSW index (before a bulk load; `create_index` rebuilds it)."""
    with conn.transaction():
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(HNSW_INDEX)))


def symbols_with_bars(conn: psycopg.Connection, interval: str = "1d") -> list[str]:
    """Symbols with at least one bar of `interval`, sorted."""
    rows = conn.execute(
        "SELECT i.symbol FROM instruments i WHERE EXISTS (SELECT 1 FROM bars b "
        "WHERE b.instrument_id = i.id AND b.interval = %s) ORDER BY i.symbol",
        (interval,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def has_states(conn: psycopg.Connection, version: str) -> bool:
    """Whether any state of `version` is stored."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM market_states WHERE version = %s)", (version,))
    found = row.fetchone()
    return bool(found and found[0])


def last_state_times(
    conn: psycopg.Connection, symbols: Sequence[str], version: str
) -> dict[str, datetime]:
    """The newest stored state per symbol of `version` (symbols without one are absent)."""
    rows = conn.execute(
        "SELECT i.symbol, max(s.ts) FROM market_states s JOIN instruments i "
        "ON i.id = s.instrument_id WHERE s.version = %s AND i.symbol = ANY(%s) GROUP BY i.symbol",
        (version, list(symbols)),
    ).fetchall()
    return {str(symbol): ts for symbol, ts in rows}


def state_counts(conn: psycopg.Connection) -> pl.DataFrame:
    """version, symbols, states, first, last: what `market_states` holds."""
    rows = conn.execute(
        "SELECT version, count(DISTINCT instrument_id), count(*), min(ts), max(ts) "
        "FROM market_states GROUP BY version ORDER BY version"
    ).fetchall()
    schema = {
        "version": pl.String(),
        "symbols": pl.Int64(),
        "states": pl.Int64(),
        "first": pl.Datetime("us", "UTC"),
        "last": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def state_at(
    conn: psycopg.Connection, symbol: str, version: str, ts: datetime
) -> tuple[datetime, np.ndarray] | None:
    """The stored state of `symbol` at bar `ts` (exactly), as (ts, float32 vector)."""
    row = conn.execute(
        "SELECT s.ts, s.embedding::text FROM market_states s JOIN instruments i "
        "ON i.id = s.instrument_id WHERE i.symbol = %s AND s.version = %s AND s.ts = %s",
        (symbol, version, ts),
    ).fetchone()
    if row is None:
        return None
    return row[0], np.asarray(row[1].strip("[]").split(","), dtype=np.float32)


def _filters(version: str, cutoff: datetime, instrument_ids: Sequence[int] | None) -> sql.Composed:
    where = [
        sql.SQL("version = {}").format(sql.Literal(version)),
        sql.SQL("ts <= {}").format(sql.Literal(cutoff)),
    ]
    if instrument_ids is not None:
        where.append(sql.SQL("instrument_id = ANY({})").format(sql.Literal(list(instrument_ids))))
    return sql.SQL(" AND ").join(where)


def _neighbors_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    schema = {
        INSTRUMENT_ID: pl.Int32(),
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        DISTANCE: pl.Float64(),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def hnsw_neighbors(
    conn: psycopg.Connection,
    query: np.ndarray,
    *,
    version: str,
    cutoff: datetime,
    k: int,
    instrument_ids: Sequence[int] | None = None,
    ef_search: int = 100,
) -> pl.DataFrame:
    """instrument_id, symbol, ts, distance of the (about) `k` nearest stored states of
    `version` up to `cutoff`, nearest first, through the HNSW index when the planner uses it.
    """
    if not 1 <= ef_search <= 1000:
        raise ValueError("ef_search must be between 1 and 1000")
    vector = vector_literal(query)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = conn.execute(
            sql.SQL(
                "WITH nearest AS MATERIALIZED (SELECT instrument_id, ts, embedding <-> {q} AS d "
                "FROM market_states WHERE {where} ORDER BY embedding <-> {q} LIMIT {k}) "
                "SELECT n.instrument_id, i.symbol, n.ts, n.d FROM nearest n "
                "JOIN instruments i ON i.id = n.instrument_id ORDER BY n.d, i.symbol, n.ts"
            ).format(
                q=sql.SQL("{}::vector").format(sql.Literal(vector)),
                where=_filters(version, cutoff, instrument_ids),
                k=sql.Literal(k),
            )
        ).fetchall()
    return _neighbors_frame(rows)


@dataclass(frozen=True, slots=True)
class StateMatrix:
    """Stored states as arrays, for exact (brute-force) search."""

    instrument_ids: np.ndarray
    ts_us: np.ndarray
    vectors: np.ndarray
    norms: np.ndarray = field(init=False)
    """squared length of each vector: |v - q|^2 = |v|^2 - 2 v.q + |q|^2 needs one mat-vec"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "norms", np.einsum("ij,ij->i", self.vectors, self.vectors))

    def nearest(self, query: np.ndarray, k: int, cutoff: datetime | None = None) -> np.ndarray:
        """Row indices of the `k` nearest states (L2) up to `cutoff`, nearest first (ties
        by instrument and time)."""
        query = query.astype(np.float32)
        distances = self.norms - 2.0 * (self.vectors @ query)  # |v - q|^2 - |q|^2
        if cutoff is not None:
            limit = int(cutoff.timestamp() * 1_000_000)
            distances = np.where(self.ts_us <= limit, distances, np.inf)
        k = min(k, int(np.isfinite(distances).sum()))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        part = np.argpartition(distances, k - 1)[:k]
        exact = self.distances(query, part)  # rank the few by their exact distances
        return part[np.lexsort((self.ts_us[part], self.instrument_ids[part], exact))]

    def distances(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """L2 distances from `query` to the states at `rows`."""
        gaps = self.vectors[rows] - query.astype(np.float32)
        return np.asarray(np.sqrt((gaps**2).sum(axis=1)))


def load_state_matrix(
    conn: psycopg.Connection, version: str, instrument_ids: Sequence[int] | None = None
) -> StateMatrix:
    """Every stored state of `version` (optionally of some instruments) as arrays."""
    where = [sql.SQL("version = {}").format(sql.Literal(version))]
    if instrument_ids is not None:
        where.append(sql.SQL("instrument_id = ANY({})").format(sql.Literal(list(instrument_ids))))
    query = sql.SQL(
        "COPY (SELECT instrument_id, ts, embedding FROM market_states WHERE {}) "
        "TO STDOUT (FORMAT binary)"
    ).format(sql.SQL(" AND ").join(where))
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    payload = buffer.getvalue()
    dtype = np.dtype(
        [
            ("nfields", ">i2"),
            ("idlen", ">i4"),
            ("id", ">i4"),
            ("tslen", ">i4"),
            ("ts", ">i8"),
            *_vector_fields(),
        ]
    )
    body = payload[len(_COPY_HEADER) : len(payload) - len(_COPY_TRAILER)]
    rows = np.frombuffer(body, dtype=dtype)
    return StateMatrix(
        instrument_ids=rows["id"].astype(np.int32),
        ts_us=rows["ts"].astype(np.int64) + _PG_EPOCH_US,
        vectors=np.ascontiguousarray(rows["vec"], dtype=np.float32),
    )
