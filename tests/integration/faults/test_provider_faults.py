"""A provider that is down, over real HTTP: each run retries with backoff, fails with the
reason and stores nothing; once its circuit opens, further runs fail at once without
calling it; after the cooldown a trial call lets a recovered provider through."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.ingest.pipeline import IngestError, IngestRequest, ingest
from engine.ingest.service import make_cache
from engine.io.http import HttpClient, RetryPolicy
from engine.settings import Settings

REQUEST = IngestRequest(
    provider="binance",
    symbols=("BTCUSDT",),
    start=datetime(2024, 1, 2, tzinfo=UTC),
    end=datetime(2024, 1, 3, tzinfo=UTC),
)


def _kline(day: int) -> list[object]:
    open_ms = int(datetime(2024, 1, day, tzinfo=UTC).timestamp() * 1000)
    return [open_ms, "1", "2", "0.5", "1.5", "10", open_ms + 86_399_999, "15", 3, "5", "7", "0"]


def _runs(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    return [
        (str(status), error)
        for status, error in conn.execute(
            "SELECT status::text, error FROM ingest_runs ORDER BY id"
        ).fetchall()
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [(503, "maintenance"), (429, "slow down"), (200, "<html>not json</html>")],
)
def test_a_down_provider_fails_runs_fast_once_its_circuit_opens(
    settings: Settings, db: psycopg.Connection, httpserver: HTTPServer, status: int, body: str
) -> None:
    calls = {"n": 0, "healthy": False}

    def klines(_: Request) -> Response:
        calls["n"] += 1
        if calls["healthy"]:
            return Response(json.dumps([_kline(2)]), content_type="application/json")
        return Response(body, status=status, headers={"Retry-After": "0"})

    httpserver.expect_request("/api/v3/klines").respond_with_handler(klines)

    def run() -> IngestError | None:
        # the default client: the process's shared circuits, a quick retry policy
        http = HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01))
        try:
            ingest(
                REQUEST,
                database_url=settings.database_url or "",
                cache=make_cache(settings.redis_url, settings),
                cache_prefix=settings.cache_prefix,
                base_urls={"binance": httpserver.url_for("")},
                http=http,
            )
        except IngestError as exc:
            return exc
        finally:
            http.close()
        return None

    first = run()
    assert first is not None
    if status == 200:  # garbage is not transient: no retry, no circuit
        assert calls["n"] == 1 and "not JSON" in str(first)
        assert db.execute("SELECT count(*) FROM bars").fetchone() == (0,)
        return
    assert calls["n"] == 3  # retried with backoff, then gave up
    second = run()  # two more failures: the fifth in a row opens the circuit
    assert second is not None and calls["n"] == 5
    third = run()
    assert third is not None and "circuit open" in str(third)
    assert calls["n"] == 5  # refused without a request
    assert [s for s, _ in _runs(db)] == ["failed"] * 3
    assert all(error for _, error in _runs(db))
    assert db.execute("SELECT count(*) FROM bars").fetchone() == (0,)
