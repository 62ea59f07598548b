"""`/api/v1/instruments/{symbol}/bars`: four formats that agree, ranges, cache and its
invalidation by a new ingest."""

from __future__ import annotations

import io

import httpx
import polars as pl
import pytest
import redis
from polars.testing import assert_frame_equal

from engine.io.cache import version_key
from engine.settings import Settings
from tests.integration.conftest import Ingest

BARS = "/api/v1/instruments/{}/bars"
COLUMNS = ["ts", "open", "high", "low", "close", "volume", "adj_close"]


def _from_json(body: dict[str, object]) -> pl.DataFrame:
    strings = {"ts": pl.String(), **{c: pl.Float64() for c in COLUMNS[1:]}}
    return pl.DataFrame(body["bars"], schema=strings).with_columns(
        pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC")
    )


def _read(fmt: str, content: bytes) -> pl.DataFrame:
    readers = {
        "csv": lambda b: pl.read_csv(b, try_parse_dates=True),
        "parquet": pl.read_parquet,
        "arrow": pl.read_ipc,
    }
    frame = readers[fmt](io.BytesIO(content))
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("UTC"), pl.col("adj_close").cast(pl.Float64)
    )


@pytest.fixture
def loaded(ingest: Ingest) -> None:
    ingest("synthetic", "2", n_days=250)


@pytest.mark.usefixtures("loaded")
def test_json_is_the_default(api: httpx.Client) -> None:
    response = api.get(BARS.format("SYN0000"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["symbol"] == "SYN0000" and body["interval"] == "1d"
    assert len(body["bars"]) == 250
    first = body["bars"][0]
    assert first["ts"] == "2010-01-04T00:00:00Z"
    assert set(first) == set(COLUMNS)
    assert first["low"] <= min(first["open"], first["close"]) <= first["high"]
    stamps = [bar["ts"] for bar in body["bars"]]
    assert stamps == sorted(stamps)


@pytest.mark.usefixtures("loaded")
def test_every_format_round_trips_to_the_same_bars(api: httpx.Client) -> None:
    params = {"start": "2010-03-01", "end": "2010-06-30T23:59:59Z"}
    expected = _from_json(api.get(BARS.format("SYN0001"), params=params).json())
    media_types = {
        "csv": "text/csv",
        "parquet": "application/vnd.apache.parquet",
        "arrow": "application/vnd.apache.arrow.file",
    }

    for fmt, media_type in media_types.items():
        response = api.get(BARS.format("SYN0001"), params={**params, "format": fmt})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media_type)
        disposition = response.headers["content-disposition"]
        assert disposition == f'attachment; filename="SYN0001_1d.{fmt}"'
        frame = _read(fmt, response.content)
        assert frame["symbol"].unique().to_list() == ["SYN0001"]
        assert_frame_equal(frame.select(COLUMNS), expected)

    assert expected.height == 88  # business days, March to June 2010
    assert str(expected["ts"].min()) == "2010-03-01 00:00:00+00:00"
    assert str(expected["ts"].max()) == "2010-06-30 00:00:00+00:00"


@pytest.mark.usefixtures("loaded")
def test_accept_header_chooses_the_format_and_format_wins(api: httpx.Client) -> None:
    url = BARS.format("SYN0000")

    csv = api.get(url, headers={"Accept": "text/csv"})
    parquet = api.get(url, headers={"Accept": "application/vnd.apache.parquet"})
    arrow = api.get(url, headers={"Accept": "application/vnd.apache.arrow.file;q=0.9"})
    both = api.get(url, params={"format": "json"}, headers={"Accept": "text/csv"})
    unknown = api.get(url, headers={"Accept": "text/html"})

    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "symbol,ts,open,high,low,close,volume,adj_close"
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert _read("parquet", parquet.content).height == 250
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.file"
    assert both.headers["content-type"].startswith("application/json")
    assert unknown.headers["content-type"].startswith("application/json")
    assert len(unknown.json()["bars"]) == 250


@pytest.mark.usefixtures("loaded")
def test_bad_ranges_symbols_and_formats_are_4xx(api: httpx.Client) -> None:
    inverted = api.get(BARS.format("SYN0000"), params={"start": "2011-01-01", "end": "2010-01-01"})
    garbled = api.get(BARS.format("SYN0000"), params={"start": "yesterday"})
    no_such_day = api.get(BARS.format("SYN0000"), params={"end": "2010-02-30"})
    unknown = api.get(BARS.format("NOPE"), params={"format": "csv"})
    bad_format = api.get(BARS.format("SYN0000"), params={"format": "xlsx"})
    empty = api.get(BARS.format("SYN0000"), params={"start": "2030-01-01", "format": "parquet"})

    assert inverted.status_code == 400
    assert inverted.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in inverted.json()["errors"]] == ["start"]
    assert garbled.status_code == 400
    assert [e["field"] for e in garbled.json()["errors"]] == ["start"]
    assert no_such_day.status_code == 400
    assert "YYYY-MM-DD" in no_such_day.json()["detail"]
    assert unknown.status_code == 404
    assert bad_format.status_code == 400
    assert empty.status_code == 200
    assert _read("parquet", empty.content).height == 0


def test_cached_until_new_bars_arrive(
    api: httpx.Client, ingest: Ingest, settings: Settings
) -> None:
    ingest("synthetic", "2", n_days=100)
    first = api.get(BARS.format("SYN0000"))
    again = api.get(BARS.format("SYN0000"))
    other = api.get(BARS.format("SYN0001"), params={"format": "csv"})
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url)
    version = version_key(settings.cache_prefix, "bars:SYN0000")
    before = int(client.get(version) or 0)

    ingest("synthetic", "SYN0000", n_days=110)  # the same series, ten more days
    fresh = api.get(BARS.format("SYN0000"))
    still = api.get(BARS.format("SYN0001"), params={"format": "csv"})

    assert [r.headers["x-cache"] for r in (first, again, other)] == ["miss", "hit", "miss"]
    assert again.content == first.content
    assert int(client.get(version) or 0) == before + 1
    assert fresh.headers["x-cache"] == "miss"
    assert len(fresh.json()["bars"]) == 110
    assert fresh.json()["bars"][:100] == first.json()["bars"]
    assert still.headers["x-cache"] == "hit"  # SYN0001 got no new bars
    client.close()
