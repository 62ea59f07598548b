"""Ingest benchmarks: load, read and cache figures side by side with their baselines.

    uv run python bench/ingest.py [--symbols 2000] [--days 2520]

- load: 5 M synthetic bars (2,000 symbols x 2,520 days) through the ingest path vs. a raw
  `COPY` of the same rows into an empty table shaped like `bars` (goal: ratio >= 0.5);
- read: those bars into Polars with `load_bars` vs. `COPY ... TO STDOUT` into a file
  (goal: ratio >= 0.5);
- cache: median and p99 latency of a cache hit vs. a TTL = 0 call for one query.

Runs against a throwaway embedded PostgreSQL 18 (durable settings, as `regimelab up` runs
it) and Valkey, or `DATABASE_URL`/`REDIS_URL` if set (the bench creates its own database).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import psycopg
import redis

from engine.ingest.pipeline import IngestRequest, ingest
from engine.io.bars import ensure_instruments, load_bars, upsert_bars
from engine.io.cache import ReadThroughCache
from engine.io.db import ensure_database, with_database
from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey
from engine.io.migrate import apply_migrations
from engine.providers import sample
from engine.providers.base import ProviderContext
from engine.providers.fetch import fetch
from engine.providers.standard.bars import BarsQuery
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.settings import PROJECT_ROOT


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """Database and Redis URLs for the bench: configured, else throwaway embedded ones."""
    with tempfile.TemporaryDirectory(prefix="regimelab-bench-") as folder:
        postgres = valkey = None
        database_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        if not database_url:
            postgres = EmbeddedPostgres(Path(folder) / "postgres")
            database_url = postgres.start_or_attach()
        if not redis_url:
            valkey = EmbeddedValkey(Path(folder) / "valkey")
            redis_url = valkey.start_or_attach()
        bench_url = with_database(database_url, "regimelab_bench")
        try:
            with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS regimelab_bench WITH (FORCE)")
            ensure_database(bench_url)
            apply_migrations(bench_url, PROJECT_ROOT / "prisma" / "migrations")
            yield bench_url, redis_url
        finally:
            with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS regimelab_bench WITH (FORCE)")
            for server in (valkey, postgres):
                if server is not None:
                    server.stop()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def raw_copy_seconds(url: str, payload: bytes) -> float:
    """COPY of the CSV rows into an empty table shaped like `bars` (same keys and defaults)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bars_raw_copy")
        conn.execute("CREATE TABLE bars_raw_copy (LIKE bars INCLUDING ALL)")
        columns = "instrument_id, interval, ts, open, high, low, close, volume, adj_close, provider"

        def copy() -> None:
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY bars_raw_copy ({columns}) FROM STDIN (FORMAT csv)") as stream,
            ):
                view = memoryview(payload)
                for offset in range(0, len(view), 1 << 20):
                    stream.write(view[offset : offset + (1 << 20)])

        seconds = timed(copy)
        conn.execute("DROP TABLE bars_raw_copy")
    return seconds


def copy_payload(frame: pl.DataFrame, ids: dict[str, int]) -> bytes:
    """The rows as the raw baseline receives them: bars' columns as CSV."""
    lookup = pl.DataFrame({"symbol": list(ids), "instrument_id": list(ids.values())})
    rows = frame.join(lookup, on="symbol").select(
        "instrument_id",
        pl.lit("1d").alias("interval"),
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        pl.lit(None, pl.Float64).alias("adj_close"),
        pl.lit("bench").alias("provider"),
    )
    return rows.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z").encode()


def bench_load(url: str, redis_url: str, symbols: tuple[str, ...], days: int) -> dict[str, float]:
    query = SyntheticBarsQuery(symbols=symbols, n_days=days)
    frame = simulate(query)
    rows = frame.height
    print(f"  {rows:,} synthetic bars ({len(symbols):,} symbols x {days:,} days)")

    with psycopg.connect(url) as conn, conn.transaction():
        ids = ensure_instruments(conn, ((s, None) for s in symbols), "bench")
    payload = copy_payload(frame.drop("regime"), ids)
    raw = raw_copy_seconds(url, payload)
    del payload

    bars = frame.drop("regime")
    with psycopg.connect(url) as conn:

        def load_stage(data: pl.DataFrame) -> Callable[[], None]:
            def run() -> None:
                with conn.transaction():
                    upsert_bars(conn, data, ids, provider="bench")

            return run

        # The load stage alone on new rows (what a backfill does), then as an update: every
        # value changed, so every row goes through staging and ON CONFLICT DO UPDATE.
        new = timed(load_stage(bars))
        update = timed(load_stage(bars.with_columns(pl.col("close") * 1.0001)))
        conn.execute("TRUNCATE bars, true_regimes")
        conn.commit()

    # End to end: simulate, store the payload in Redis, check quality, load bars and true
    # regimes, record the run.
    cache = ReadThroughCache(redis.Redis.from_url(url=redis_url))
    request = IngestRequest(provider="synthetic", symbols=symbols, options={"n_days": days})
    end_to_end = timed(lambda: ingest(request, database_url=url, cache=cache))
    return {
        "rows": rows,
        "raw_copy": raw,
        "load_new": new,
        "load_update": update,
        "ingest": end_to_end,
    }


def bench_read(url: str, symbols: tuple[str, ...], path: Path) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        sql = (
            "COPY (SELECT i.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, b.adj_close "
            "FROM bars b JOIN instruments i ON i.id = b.instrument_id "
            "WHERE i.symbol = ANY(%s) AND b.interval = '1d' ORDER BY i.symbol, b.ts) "
            "TO STDOUT (FORMAT csv)"
        )

        def copy_to_file() -> None:
            with (
                path.open("wb") as sink,
                conn.cursor() as cur,
                cur.copy(psycopg.sql.SQL(sql).format(), (list(symbols),)) as stream,
            ):
                for chunk in stream:
                    sink.write(chunk)

        raw = timed(copy_to_file)
        frame: list[pl.DataFrame] = []
        ours = timed(lambda: frame.append(load_bars(conn, list(symbols))))
    return {"rows": frame[0].height, "copy_to_file": raw, "load_bars": ours}


def bench_cache(redis_url: str, iterations: int = 300) -> dict[str, float]:
    provider, fetcher = sample.PROVIDER, sample.PROVIDER.fetchers["bars"]
    query = BarsQuery(symbols=("SPX",))
    cache = ReadThroughCache(redis.Redis.from_url(redis_url))
    context = ProviderContext()

    def latencies(ttl: int) -> list[float]:
        out = []
        for _ in range(iterations):
            out.append(
                timed(
                    lambda: fetch(provider, fetcher, query, context=context, cache=cache, ttl=ttl)
                )
            )
        return sorted(out)

    fetch(provider, fetcher, query, context=context, cache=cache, ttl=3600)  # warm the entry
    hits, refresh = latencies(3600), latencies(0)
    assert cache.stats["hit"] >= iterations and cache.stats["refresh"] == iterations

    def p99(values: list[float]) -> float:
        return values[min(len(values) - 1, round(0.99 * len(values)))]

    return {
        "hit_p50": statistics.median(hits),
        "hit_p99": p99(hits),
        "ttl0_p50": statistics.median(refresh),
        "ttl0_p99": p99(refresh),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--days", type=int, default=2520)
    args = parser.parse_args()
    symbols = resolve_symbols(str(args.symbols))

    with servers() as (url, redis_url), tempfile.TemporaryDirectory() as scratch:
        print("load")
        load = bench_load(url, redis_url, symbols, args.days)
        print("read")
        read = bench_read(url, symbols, Path(scratch) / "bars.csv")
        print("cache")
        cache = bench_cache(redis_url)

    report(load, read, cache)


def report(load: dict[str, float], read: dict[str, float], cache: dict[str, float]) -> None:
    """The figures as a table, each beside its baseline."""
    width = 50
    print(f"\n{'benchmark':<{width}} {'rows/s':>12} {'seconds':>9} {'vs baseline':>12}")
    print("-" * (width + 36))
    n = load["rows"]
    rows = [
        ("load: raw COPY into empty bars-shaped table", n, load["raw_copy"], None),
        ("load: ingest load stage, new rows", n, load["load_new"], load["raw_copy"]),
        ("load: ingest load stage, every row changed", n, load["load_update"], load["raw_copy"]),
        ("load: full ingest run (+simulate, cache, regimes)", n, load["ingest"], load["raw_copy"]),
        ("read: COPY TO STDOUT into a file", read["rows"], read["copy_to_file"], None),
        ("read: load_bars into Polars", read["rows"], read["load_bars"], read["copy_to_file"]),
    ]
    for label, count, seconds, baseline in rows:
        ratio = "baseline" if baseline is None else f"{baseline / seconds:.2f}x"
        print(f"{label:<{width}} {count / seconds:>12,.0f} {seconds:>9.2f} {ratio:>12}")
    print(f"\n{'cache (one query: sample SPX bars)':<{width}} {'p50 ms':>12} {'p99 ms':>9}")
    print("-" * (width + 23))
    for label, key in (
        ("hit (TTL > 0, served from Redis)", "hit"),
        ("TTL = 0 (source called, then stored)", "ttl0"),
    ):
        print(
            f"{label:<{width}} {cache[key + '_p50'] * 1e3:>12.2f} {cache[key + '_p99'] * 1e3:>9.2f}"
        )


if __name__ == "__main__":
    main()
