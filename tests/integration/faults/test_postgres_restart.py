"""PostgreSQL restarted in the middle of an ingest: no partial batch, the run is marked
failed, a re-run completes, and the API's pool reconnects without restarting the app."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from api.server.app import create_app
from engine.ingest.service import build_request, run_ingest
from engine.io.api_keys import create_api_key, server_secret
from engine.io.embedded import EmbeddedPostgres
from engine.io.migrate import apply_migrations
from engine.settings import Settings
from tests.integration.api.conftest import ServeApi

SYMBOLS = 600  # 1.5 M bars: the restart lands while they are being written
DAYS = 2520


def _bars_per_symbol(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.symbol, count(*) FROM bars b JOIN instruments i ON i.id = b.instrument_id "
            "GROUP BY i.symbol"
        ).fetchall()
    return {str(symbol): int(count) for symbol, count in rows}


def _wait_for_the_write(url: str, deadline: float = 120.0) -> None:
    """Return once a session is loading bars (COPY into the load table, or the upsert)."""
    stop = time.monotonic() + deadline
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < stop:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE state = 'active' "
                "AND pid <> pg_backend_pid() AND (query ILIKE 'COPY%%' OR query ILIKE "
                "'INSERT INTO bars%%'))"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the ingest never started writing")


@pytest.mark.slow
def test_a_restart_mid_ingest_leaves_whole_batches_and_the_api_reconnects(
    settings: Settings, state_dir: Path, serve_api: ServeApi
) -> None:
    postgres = EmbeddedPostgres(state_dir / "postgres", durable=False)
    url = postgres.start_or_attach()
    try:
        apply_migrations(url, settings.migrations_dir)
        own = dataclasses.replace(settings, database_url=url, rate_limit_per_minute=0)
        with psycopg.connect(url, autocommit=True) as conn:
            _, key = create_api_key(conn, "faults", "admin", server_secret(own))
        request = build_request("synthetic", str(SYMBOLS), options={"n_days": DAYS})
        with (
            serve_api(create_app(own)) as api_url,
            httpx.Client(
                base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as api,
        ):
            assert api.get("/api/v1/instruments").status_code == 200
            failures: list[BaseException] = []

            def ingest() -> None:
                try:
                    run_ingest(own, request, database_url=url, redis_url=own.redis_url)
                except Exception as exc:  # the run is expected to fail
                    failures.append(exc)

            worker = threading.Thread(target=ingest)
            worker.start()
            _wait_for_the_write(url)
            postgres.stop()  # fast shutdown: every session is cut
            restarted = postgres.start_or_attach()
            worker.join(timeout=300)
            assert restarted == url
            assert failures, "the restart should have interrupted the ingest"

            # no partial batch: the interrupted one is rolled back, each symbol whole or absent
            stored = _bars_per_symbol(url)
            assert len(stored) < SYMBOLS
            assert set(stored.values()) <= {DAYS}
            with psycopg.connect(url) as conn:
                runs = conn.execute("SELECT status::text, error FROM ingest_runs").fetchall()
            assert [status for status, _ in runs] == ["failed"], runs
            assert runs[0][1]

            # the API's pools reconnect by themselves
            deadline = time.monotonic() + 30
            while api.get("/api/v1/instruments").status_code != 200:
                assert time.monotonic() < deadline, "the API did not reconnect"
                time.sleep(0.2)
            assert api.get("/ready").status_code == 200

            # a re-run completes: only the missing symbols are fetched
            result = run_ingest(own, request, database_url=url, redis_url=own.redis_url)
            assert result.rows_upserted >= (SYMBOLS - len(stored)) * DAYS
            assert _bars_per_symbol(url) == dict.fromkeys(_bars_per_symbol(url), DAYS)
            assert len(_bars_per_symbol(url)) == SYMBOLS
    finally:
        postgres.stop()
