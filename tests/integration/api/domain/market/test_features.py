"""`/api/v1/instruments/{symbol}/features`: the engine's features, warmed up before
`start`, a default set, unknown names listed, cached until new bars arrive."""

from __future__ import annotations

import math

import httpx
import polars as pl
import psycopg

from api.domain.market.services import DEFAULT_FEATURES
from engine.features.names import FEATURE_NAMES
from engine.features.pipeline import with_features
from engine.io.bars import load_bars
from engine.settings import Settings
from tests.integration.conftest import Ingest

FEATURES = "/api/v1/instruments/{}/features"


def _engine_features(settings: Settings, symbol: str, names: list[str]) -> pl.DataFrame:
    """The features computed straight from the engine over the whole stored series."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        bars = load_bars(conn, [symbol])
    return with_features(bars.lazy(), names).select("ts", *names).collect()


def _same(api_values: list[float | None], engine_values: list[float | None]) -> bool:
    def norm(v: float | None) -> float | None:
        return None if v is None or math.isnan(v) else v

    return all(
        norm(a) == norm(b) or (a is not None and b is not None and math.isclose(a, b))
        for a, b in zip(api_values, engine_values, strict=True)
    )


def test_default_features_over_the_whole_series(
    api: httpx.Client, ingest: Ingest, settings: Settings
) -> None:
    ingest("synthetic", "1", n_days=150)

    body = api.get(FEATURES.format("SYN0000")).json()
    expected = _engine_features(settings, "SYN0000", list(DEFAULT_FEATURES))

    assert body["symbol"] == "SYN0000" and body["interval"] == "1d"
    assert body["features"] == list(DEFAULT_FEATURES)
    assert len(body["ts"]) == 150
    assert body["ts"][0] == "2010-01-04T00:00:00Z"
    assert body["values"]["log_return"][0] is None  # no return on the first bar
    for name in DEFAULT_FEATURES:
        assert _same(body["values"][name], expected[name].to_list()), name


def test_start_is_warmed_up_on_earlier_bars(
    api: httpx.Client, ingest: Ingest, settings: Settings
) -> None:
    ingest("synthetic", "1", n_days=200)
    names = ["sma_50d", "realized_vol_20d", "log_return"]

    body = api.get(
        FEATURES.format("SYN0000"),
        params={"features": " sma_50d, realized_vol_20d,log_return,sma_50d", "start": "2010-06-01"},
    ).json()
    expected = _engine_features(settings, "SYN0000", names).filter(
        pl.col("ts") >= pl.datetime(2010, 6, 1, time_zone="UTC")
    )

    assert body["features"] == names
    assert body["ts"][0] == "2010-06-01T00:00:00Z"
    assert len(body["ts"]) == expected.height
    assert body["values"]["sma_50d"][0] is not None  # warm-up came from bars before start
    for name in names:
        assert _same(body["values"][name], expected[name].to_list()), name


def test_unknown_features_and_symbols(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "1", n_days=30)

    unknown = api.get(FEATURES.format("SYN0000"), params={"features": "log_return,alpha"})
    missing = api.get(FEATURES.format("NOPE"))
    inverted = api.get(FEATURES.format("SYN0000"), params={"start": "2011-01-01", "end": "2010"})

    assert unknown.status_code == 400
    problem = unknown.json()
    assert [e["field"] for e in problem["errors"]] == ["features"]
    assert "'alpha'" in problem["detail"]
    assert all(name in problem["detail"] for name in FEATURE_NAMES)
    assert missing.status_code == 404
    assert inverted.status_code == 400


def test_cached_until_new_bars_arrive(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "1", n_days=80)
    params = {"features": "log_return"}

    first = api.get(FEATURES.format("SYN0000"), params=params).json()
    again = api.get(FEATURES.format("SYN0000"), params=params).json()
    ingest("synthetic", "1", n_days=90)
    fresh = api.get(FEATURES.format("SYN0000"), params=params).json()

    assert again == first
    assert len(first["ts"]) == 80
    assert len(fresh["ts"]) == 90
    assert fresh["values"]["log_return"][:80] == first["values"]["log_return"]
