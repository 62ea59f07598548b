"""Ingest runs end to end: real Postgres, real Redis, real providers (network ones replayed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from pytest_httpserver import HTTPServer

from engine.ingest.pipeline import IngestError, IngestRequest, ingest
from engine.ingest.service import build_request, make_cache, run_ingest
from engine.io.bars import load_bars
from engine.io.embedded import EmbeddedValkey
from engine.io.http import HttpClient, RetryPolicy
from engine.providers import sample
from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.registry import register, unregister
from engine.providers.standard.bars import BarsQuery
from engine.settings import Settings


def _ingest(settings: Settings, provider: str, symbols: str | None, **kwargs: Any):  # type: ignore[no-untyped-def]
    assert settings.database_url is not None
    return run_ingest(
        settings,
        build_request(provider, symbols, **kwargs),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )


def _bars_fingerprint(db: psycopg.Connection) -> tuple[int, str]:
    row = db.execute(
        "SELECT count(*), "
        "md5(coalesce(string_agg(b::text, '|' ORDER BY instrument_id, ts), '')) FROM bars b"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _run_row(db: psycopg.Connection, run_id: int) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM ingest_runs WHERE id = %s", (run_id,))
    names = [c.name for c in cur.description or []]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_sample_loads_both_series_and_a_rerun_adds_nothing(
    settings: Settings, db: psycopg.Connection
) -> None:
    first = _ingest(settings, "sample", "SPX,IXIC")

    assert first.status == "succeeded"
    assert first.rows_upserted == 5031 * 2
    counts = dict(
        db.execute(
            "SELECT i.symbol, count(*) FROM bars b JOIN instruments i ON i.id = b.instrument_id "
            "GROUP BY i.symbol"
        ).fetchall()
    )
    assert counts == {"SPX": 5031, "IXIC": 5031}
    before = _bars_fingerprint(db)
    db.commit()

    again = _ingest(settings, "sample", "SPX,IXIC")
    full = _ingest(settings, "sample", "SPX,IXIC", full=True)

    assert again.rows_upserted == 0 and full.rows_upserted == 0
    assert again.rows_fetched == 2  # incremental: only each symbol's last bar is refetched
    assert _bars_fingerprint(db) == before
    run = _run_row(db, first.run_id)
    assert run["status"] == "succeeded" and run["rows_upserted"] == 10062 and run["finished_at"]
    described = db.execute(
        "SELECT symbol, name, asset_class, provider FROM instruments ORDER BY symbol"
    ).fetchall()
    assert described == [
        ("IXIC", "NASDAQ Composite Index", "index", "sample"),
        ("SPX", "S&P 500 Index", "index", "sample"),
    ]


def test_loaded_bars_read_back_identical(settings: Settings, db: psycopg.Connection) -> None:
    _ingest(settings, "sample", "SPX")
    expected = sample.fetch_bars(["SPX"])

    loaded = load_bars(db, ["SPX"])

    assert loaded.schema == expected.schema
    assert loaded.equals(expected)
    window = load_bars(
        db, ["SPX"], start=datetime(2008, 10, 1, tzinfo=UTC), end=datetime(2008, 10, 31, tzinfo=UTC)
    )
    assert window.height == 23
    assert window["ts"].min() == datetime(2008, 10, 1, tzinfo=UTC)


def test_incremental_load_fetches_from_the_last_stored_bar(
    settings: Settings, db: psycopg.Connection
) -> None:
    _ingest(settings, "sample", "SPX", end=datetime(2010, 12, 31, tzinfo=UTC))

    later = _ingest(settings, "sample", "SPX")

    tail = sample.fetch_bars(["SPX"]).filter(pl.col("ts") >= datetime(2010, 12, 31, tzinfo=UTC))
    assert later.rows_fetched == tail.height
    assert later.rows_upserted == tail.height - 1  # the refetched last bar is unchanged
    assert load_bars(db, ["SPX"]).height == 5031


@pytest.mark.filterwarnings(
    "ignore:Series.values returning an ndarray"
)  # inside exchange_calendars
def test_calendar_gaps_are_reported_against_the_exchange_calendar(
    settings: Settings, db: psycopg.Connection
) -> None:
    import exchange_calendars as xcals

    result = _ingest(settings, "sample", "SPX")

    days = set(sample.fetch_bars(["SPX"])["ts"].dt.date().to_list())
    sessions = xcals.get_calendar("XNYS", start=min(days), end=max(days)).sessions_in_range(
        min(days), max(days)
    )
    missing = {d for d in sessions.date if d not in days}
    assert result.quality.calendar_gaps == len(missing)
    assert _run_row(db, result.run_id)["quality"]["calendar_gaps"] == len(missing)


@pytest.mark.slow
def test_synthetic_500_symbols_with_true_regimes(
    settings: Settings, db: psycopg.Connection
) -> None:
    result = _ingest(settings, "synthetic", "500")

    assert result.status == "succeeded"
    assert result.symbols == 500
    assert result.rows_upserted == result.true_regimes == 500 * 2520
    stored = db.execute(
        "SELECT count(DISTINCT b.instrument_id), count(*) FROM bars b "
        "JOIN true_regimes t USING (instrument_id, interval, ts)"
    ).fetchone()
    assert stored == (500, 500 * 2520)
    assert db.execute("SELECT count(*) FROM instruments WHERE name IS NULL").fetchone() == (0,)


def test_more_symbols_than_one_instrument_query_takes_are_all_described(
    settings: Settings, db: psycopg.Connection
) -> None:
    result = _ingest(settings, "synthetic", "1200", options={"n_days": 5})

    assert result.symbols == 1200
    assert db.execute("SELECT count(*) FROM instruments WHERE name IS NULL").fetchone() == (0,)


def test_bad_rows_are_rejected_counted_and_never_stored(
    settings: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "symbol,ts,open,high,low,close,volume\n"
        "AAA,2024-01-02,10,11,9,10.5,100\n"
        "AAA,2024-01-04,10,11,9,10.5,100\n"
        "AAA,2024-01-03,10,11,9,10.5,100\n"  # out of order: kept, counted
        "AAA,2024-01-05,-1,11,9,10.5,100\n"  # non-positive price (so low is above it too)
        "AAA,2024-01-08,10,9.5,9,10.5,100\n"  # high below close
        "AAA,2024-01-09,10,11,10.2,10.5,100\n"  # low above open
        "AAA,2024-01-10,10,11,9,10.5,-5\n"  # negative volume
        "AAA,2024-01-11,10,11,9,,100\n"  # missing close
        "AAA,2024-01-02,10,11,9,10.6,100\n"  # duplicate ts: the last one wins
    )

    result = _ingest(settings, "files", None, options={"path": str(csv)})

    quality = _run_row(db, result.run_id)["quality"]
    assert quality["rejected"] == {
        "non_positive_price": 1,
        "high_below_open_close": 1,
        "low_above_open_close": 2,
        "negative_volume": 1,
        "missing_value": 1,
    }
    assert quality["rows_invalid"] == 5
    assert quality["duplicate_ts"] == 1
    assert quality["out_of_order"] >= 1
    assert result.rows_rejected == 6
    stored = load_bars(db, ["AAA"])
    assert stored["ts"].dt.day().to_list() == [2, 3, 4]
    assert stored["close"].to_list() == [10.6, 10.5, 10.5]


def _failed_run(db: psycopg.Connection, error: IngestError) -> dict[str, Any]:
    assert error.run_id is not None
    run = _run_row(db, error.run_id)
    assert run["status"] == "failed" and run["finished_at"] is not None
    return run


def test_malformed_csv_fails_clearly_and_stores_nothing(
    settings: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    (tmp_path / "AAA.csv").write_text(
        "ts,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.5,10,7,\x00\x01\n"
    )

    with pytest.raises(IngestError, match=r"files: cannot read AAA\.csv") as caught:
        _ingest(settings, "files", None, options={"path": str(tmp_path)})

    assert "cannot read AAA.csv" in _failed_run(db, caught.value)["error"]
    assert _bars_fingerprint(db)[0] == 0


def test_unknown_symbol_fails_clearly_and_stores_nothing(
    settings: Settings, db: psycopg.Connection
) -> None:
    with pytest.raises(IngestError, match="unknown symbol 'NOPE'") as caught:
        _ingest(settings, "sample", "SPX,NOPE")

    assert "unknown symbol 'NOPE'" in _failed_run(db, caught.value)["error"]
    assert _bars_fingerprint(db)[0] == 0


@pytest.fixture
def binance(httpserver: HTTPServer) -> HTTPServer:
    return httpserver


def _kline(day: int) -> list[Any]:
    open_ms = int(datetime(2024, 1, day, tzinfo=UTC).timestamp() * 1000)
    return [open_ms, "100", "110", "90", "105", "12.5", open_ms + 86_399_999, "0", 1, "0", "0", "0"]


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (500, {}, "server error HTTP 500"),
        (503, {}, "server error HTTP 503"),
        (429, {"Retry-After": "0"}, "rate limited"),
    ],
)
def test_provider_failures_retry_then_fail_with_nothing_partial(
    settings: Settings,
    db: psycopg.Connection,
    binance: HTTPServer,
    status: int,
    headers: dict[str, str],
    message: str,
) -> None:
    # BTCUSDT answers, ETHUSDT keeps failing: the run fails and BTCUSDT's rows are not kept
    # half-loaded either (they were in the same batch).
    from werkzeug import Request, Response

    calls: dict[str, int] = {}

    def klines(request: Request) -> Response:
        symbol = request.args["symbol"]
        calls[symbol] = calls.get(symbol, 0) + 1
        if symbol == "BTCUSDT":
            return Response(json.dumps([_kline(2), _kline(3)]), content_type="application/json")
        return Response("oops", status=status, headers=headers)

    binance.expect_request("/api/v3/klines", method="GET").respond_with_handler(klines)
    request = IngestRequest(
        provider="binance",
        symbols=("BTCUSDT", "ETHUSDT"),
        start=datetime(2024, 1, 2, tzinfo=UTC),
        end=datetime(2024, 1, 3, tzinfo=UTC),
    )
    http = HttpClient(retry=RetryPolicy(attempts=3, base_delay=0.01))

    with pytest.raises(IngestError, match=message) as caught:
        ingest(
            request,
            database_url=settings.database_url or "",
            cache=make_cache(settings.redis_url, settings),
            cache_prefix=settings.cache_prefix,
            base_urls={"binance": binance.url_for("")},
            http=http,
        )

    run = _failed_run(db, caught.value)
    assert "gave up after 3 attempts" in run["error"]
    assert _bars_fingerprint(db)[0] == 0
    assert calls == {"BTCUSDT": 1, "ETHUSDT": 3}


def test_provider_timeout_fails_clearly(
    settings: Settings, db: psycopg.Connection, binance: HTTPServer
) -> None:
    import time

    from werkzeug import Request, Response

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("[]", content_type="application/json")

    binance.expect_request("/api/v3/klines").respond_with_handler(slow)
    with pytest.raises(IngestError, match="timed out") as caught:
        ingest(
            IngestRequest(provider="binance", symbols=("BTCUSDT",)),
            database_url=settings.database_url or "",
            cache=make_cache(settings.redis_url, settings),
            base_urls={"binance": binance.url_for("")},
            http=HttpClient(retry=RetryPolicy(attempts=2, base_delay=0.01), timeout=0.1),
        )
    assert "timed out" in _failed_run(db, caught.value)["error"]


class _Recording:
    """A provider whose extract counts its calls (the test double of a paid API)."""

    def __init__(self, default_ttl: int) -> None:
        self.calls = 0
        self.provider = Provider(
            name="recording",
            description="counts extract calls",
            fetchers={
                "bars": Fetcher(
                    dataset="bars",
                    query_type=BarsQuery,
                    extract=self.extract,
                    transform=self.transform,
                    default_ttl=default_ttl,
                    max_symbols=None,
                )
            },
        )

    def extract(self, query: BarsQuery, context: ProviderContext) -> Raw:
        self.calls += 1
        return sample.extract(BarsQuery(symbols=("SPX",)), context)

    def transform(self, query: BarsQuery, raw: Raw) -> pl.DataFrame:
        return sample.transform(query, raw).with_columns(pl.lit("REC").alias("symbol"))


@pytest.fixture
def recording() -> Iterator[_Recording]:
    double = _Recording(default_ttl=3600)
    register(double.provider)
    yield double
    unregister("recording")


def test_provider_ttls_table_overrides_the_default(
    settings: Settings, db: psycopg.Connection, recording: _Recording
) -> None:
    _ingest(settings, "recording", "REC", full=True)
    _ingest(settings, "recording", "REC", full=True)
    assert recording.calls == 1  # default TTL 3600: the second run is served from Redis

    db.execute(
        "INSERT INTO provider_ttls (provider, dataset, ttl_seconds) VALUES ('recording', 'bars', 0)"
    )
    db.commit()
    second = _ingest(settings, "recording", "REC", full=True)
    _ingest(settings, "recording", "REC", full=True)

    assert recording.calls == 3  # TTL 0: always call the source
    assert second.cache == {"refresh": 1}


def test_ingest_succeeds_with_redis_stopped(
    settings: Settings, db: psycopg.Connection, state_dir: Path, recording: _Recording
) -> None:
    server = EmbeddedValkey(state_dir / "valkey")
    dead_url = server.start_or_attach()
    server.stop()
    assert settings.database_url is not None

    result = run_ingest(
        settings,
        build_request("recording", "REC"),
        database_url=settings.database_url,
        redis_url=dead_url,
    )

    assert result.status == "succeeded"
    assert result.cache == {"bypass": 1}
    assert load_bars(db, ["REC"]).height == 5031


def test_bad_requests_fail_before_any_run_is_recorded(
    settings: Settings, db: psycopg.Connection
) -> None:
    with pytest.raises(IngestError, match="interval 1m is not offered"):
        _ingest(settings, "sample", "SPX", interval="1m")
    with pytest.raises(IngestError, match="start 2020-01-01 is after end 2019-01-01"):
        _ingest(
            settings,
            "sample",
            "SPX",
            start=datetime(2020, 1, 1, tzinfo=UTC),
            end=datetime(2019, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(IngestError, match="--symbols is required"):
        _ingest(settings, "sample", None)
    assert db.execute("SELECT count(*) FROM ingest_runs").fetchone() == (0,)


def test_quality_json_is_valid_json(settings: Settings, db: psycopg.Connection) -> None:
    result = _ingest(settings, "sample", "VIX")
    stored = _run_row(db, result.run_id)["quality"]
    assert json.loads(json.dumps(stored))["rows_in"] == 1259
