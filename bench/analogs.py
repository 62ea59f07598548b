"""Analog-search benchmark: build time, HNSW query latency and recall against exact search.

    uv run python bench/analogs.py [--symbols 2000] [--days 500] [--queries 200]

- build: 1 M market states (2,000 synthetic symbols x 500 days, dimension 32): embedding
  (Polars), binary COPY into `market_states`, then the HNSW index (m 16, ef_construction 64);
- query: top-10 nearest states for held-out query states (from 10 symbols that are not
  stored) through pgvector HNSW at several `ef_search`, p50/p99 latency and recall@10,
  side by side with the exact searches: NumPy brute force over the same vectors, and
  pgvector with the index disabled (a sequential scan). Goal: recall >= 0.95 at p99 <= 20 ms.

Runs against a throwaway embedded PostgreSQL 18 (or `DATABASE_URL`; the bench creates its
own database).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

from engine.analogs.embedding import EmbeddingSpec, state_vectors
from engine.io import analogs as store
from engine.io.bars import ensure_instruments
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.schema import SYMBOL

sys.path.insert(0, str(Path(__file__).parent))
from ingest import servers  # bench/ingest.py: throwaway embedded servers

SPEC = EmbeddingSpec(window=63, regime_model=None)
HELD_OUT = 10
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def embed(symbols: int, days: int) -> tuple[pl.DataFrame, float]:
    """States of `symbols` + HELD_OUT synthetic symbols with `days` states each."""
    query = SyntheticBarsQuery(
        symbols=resolve_symbols(str(symbols + HELD_OUT)), n_days=days + SPEC.lookback, seed=7
    )
    bars = simulate(query)
    started = time.perf_counter()
    states = state_vectors(bars, SPEC)
    return states, time.perf_counter() - started


def seq_scan_topk(conn: psycopg.Connection, query: np.ndarray, k: int) -> None:
    vector = "[" + ",".join(repr(float(x)) for x in query) + "]"
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute(
            "SELECT instrument_id, ts FROM market_states WHERE version = %s "
            "ORDER BY embedding <-> %s::vector LIMIT %s",
            (SPEC.version, vector, k),
        ).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    states, embed_s = embed(args.symbols, args.days)
    symbols = sorted(states[SYMBOL].unique().to_list())
    stored_symbols, held_out = symbols[: args.symbols], symbols[args.symbols :]
    stored = states.filter(pl.col(SYMBOL).is_in(stored_symbols))
    rng = np.random.default_rng(0)
    pool = states.filter(pl.col(SYMBOL).is_in(held_out))["embedding"].to_numpy()
    queries = pool[rng.choice(len(pool), size=args.queries, replace=False)]

    with servers() as (url, _redis), psycopg.connect(url, autocommit=True) as conn:
        ids = ensure_instruments(conn, [(s, None) for s in stored_symbols], "synthetic")
        store.drop_index(conn)
        started = time.perf_counter()
        store.write_states(conn, stored, ids, SPEC.version)
        copy_s = time.perf_counter() - started
        started = time.perf_counter()
        store.create_index(conn, m=16, ef_construction=64)
        index_s = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE market_states")
        plan = conn.execute(
            "EXPLAIN SELECT instrument_id FROM market_states WHERE version = %s AND ts <= %s "
            "ORDER BY embedding <-> %s::vector LIMIT 10",
            (SPEC.version, FAR_FUTURE, "[" + ",".join(["0"] * 32) + "]"),
        ).fetchall()
        uses_index = any(store.HNSW_INDEX in str(row[0]) for row in plan)

        print(f"market states: {stored.height:,} ({args.symbols:,} symbols x {args.days} days)")
        print(f"  embed (Polars)        {embed_s:8.1f} s   ({stored.height / embed_s:,.0f}/s)")
        print(f"  binary COPY upsert    {copy_s:8.1f} s   ({stored.height / copy_s:,.0f}/s)")
        print(f"  HNSW index build      {index_s:8.1f} s   (m 16, ef_construction 64)")
        print(f"  build total           {embed_s + copy_s + index_s:8.1f} s")
        print(f"  planner uses the HNSW index: {uses_index}")

        matrix = store.load_state_matrix(conn, SPEC.version)
        exact_ms: list[float] = []
        truth: list[set[tuple[int, int]]] = []
        for query in queries:
            started = time.perf_counter()
            rows = matrix.nearest(query, args.k)
            exact_ms.append((time.perf_counter() - started) * 1000)
            truth.append(
                set(
                    zip(
                        matrix.instrument_ids[rows].tolist(),
                        matrix.ts_us[rows].tolist(),
                        strict=True,
                    )
                )
            )
        seq_ms: list[float] = []
        for query in queries[:20]:
            started = time.perf_counter()
            seq_scan_topk(conn, query, args.k)
            seq_ms.append((time.perf_counter() - started) * 1000)

        print(f"\ntop-{args.k} query, {len(queries)} held-out queries")
        print(f"  {'search':<26}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
        print(
            f"  {'exact: NumPy brute force':<26}{percentile(exact_ms, 50):9.2f}"
            f"{percentile(exact_ms, 99):9.2f}{1.0:11.3f}"
        )
        print(
            f"  {'exact: pgvector seq scan':<26}{percentile(seq_ms, 50):9.2f}"
            f"{percentile(seq_ms, 99):9.2f}{1.0:11.3f}   (20 queries)"
        )
        for ef in (40, 100, 200):
            latencies: list[float] = []
            recalls: list[float] = []
            for query, expected in zip(queries, truth, strict=True):
                started = time.perf_counter()
                found = store.hnsw_neighbors(
                    conn, query, version=SPEC.version, cutoff=FAR_FUTURE, k=args.k, ef_search=ef
                )
                latencies.append((time.perf_counter() - started) * 1000)
                micros = found["ts"].dt.epoch("us").to_list()
                got = set(zip(found["instrument_id"].to_list(), micros, strict=True))
                recalls.append(len(got & expected) / args.k)
            print(
                f"  {f'pgvector HNSW ef={ef}':<26}{percentile(latencies, 50):9.2f}"
                f"{percentile(latencies, 99):9.2f}{statistics.mean(recalls):11.3f}"
            )


if __name__ == "__main__":
    main()
