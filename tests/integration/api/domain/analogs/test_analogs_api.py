"""Analog routes over real HTTP on the sample S&P 500 and NASDAQ: the build job, a search
with forward returns, paths and fan, the states summary, and bad input as problems."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

import httpx
import polars as pl
import pytest

from engine.ingest.service import build_request, run_ingest
from engine.io.bars import load_bars
from engine.io.db import connect
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys

PROBLEM = "application/problem+json"


def _wait_for_job(api: httpx.Client, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return dict(response.json())


@pytest.fixture
def built(settings: Settings, api: httpx.Client) -> httpx.Client:
    """An admin client of an API whose database holds the sample bars and their states."""
    assert settings.database_url is not None
    run_ingest(
        settings,
        build_request("sample", "SPX,IXIC"),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    missing = api.get("/api/v1/analogs/SPX")
    assert "POST /api/v1/analogs/build" in _problem(missing, 404)["detail"]
    response = api.post("/api/v1/analogs/build", json={})
    assert response.status_code == 202, response.text
    job = _wait_for_job(api, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["symbols"] == 2 and job["result"]["states"] > 8000
    return api


def test_a_search_returns_causal_analogs_with_what_followed(
    settings: Settings, built: httpx.Client
) -> None:
    response = built.get(
        "/api/v1/analogs/SPX", params={"date": "2008-10-10", "k": 8, "horizons": "5,21,63"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ts"].startswith("2008-10-10")
    assert body["method"] == "hnsw" and body["window"] == 63
    assert len(body["analogs"]) == 8
    cutoff = datetime.fromisoformat(body["cutoff"])
    assert all(datetime.fromisoformat(a["ts"]) <= cutoff for a in body["analogs"])
    assert {a["symbol"] for a in body["analogs"]} <= {"SPX", "IXIC"}
    assert [a["rank"] for a in body["analogs"]] == list(range(1, 9))
    distances = [a["distance"] for a in body["analogs"]]
    assert distances == sorted(distances)

    # forward returns are the bars' own returns
    assert settings.database_url is not None
    with connect(settings.database_url) as conn:
        bars = load_bars(conn, ["SPX", "IXIC"])
    spx = bars.filter(pl.col("symbol") == "SPX")["ts"].to_list()
    query_at = spx.index(datetime.fromisoformat(body["ts"]))
    assert cutoff == spx[query_at - 64]  # the bar before the query's 63-bar window
    for analog in body["analogs"]:
        own = bars.filter(pl.col("symbol") == analog["symbol"]).sort("ts")
        at = own["ts"].to_list().index(datetime.fromisoformat(analog["ts"]))
        for h in (5, 21, 63):
            expected = own["close"][at + h] / own["close"][at] - 1
            assert analog["forward_returns"][str(h)] == pytest.approx(expected, rel=1e-9)

    outcomes = {row["horizon"]: row for row in body["distribution"]}
    assert set(outcomes) == {5, 21, 63}
    assert outcomes[21]["count"] == 8
    assert body["offsets"] == list(range(-63, 64))
    assert all(len(path["values"]) == len(body["offsets"]) for path in body["paths"])
    assert [p["offset"] for p in body["query_path"]] == list(range(-63, 1))
    assert [p["offset"] for p in body["fan"]] == list(range(64))

    exact = built.get(
        "/api/v1/analogs/SPX", params={"date": "2008-10-10", "k": 8, "method": "exact"}
    ).json()
    assert exact["method"] == "exact" and exact["ef_search"] is None

    def episode(a: dict[str, Any], b: dict[str, Any]) -> bool:
        gap = abs(datetime.fromisoformat(a["ts"]) - datetime.fromisoformat(b["ts"]))
        return a["symbol"] == b["symbol"] and gap.days < 63

    # the same episodes (a day's difference in the chosen state of one is fine)
    same = [a for a in exact["analogs"] if any(episode(a, b) for b in body["analogs"])]
    assert len(same) >= 7


def test_universe_and_states_summary(built: httpx.Client) -> None:
    only_ixic = built.get("/api/v1/analogs/SPX", params={"universe": "IXIC", "k": 5}).json()
    assert {a["symbol"] for a in only_ixic["analogs"]} == {"IXIC"}
    summary = built.get("/api/v1/analogs/states").json()
    assert summary["index"] is True
    (version,) = summary["versions"]
    assert version["version"] == summary["default_version"]
    assert version["symbols"] == 2


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"k": 0}, "k"),
    ({"k": 1001}, "k"),
    ({"horizons": "5,x"}, "horizons"),
    ({"horizons": "0"}, "horizons"),
    ({"date": "1999-06-01"}, "date"),
    ({"universe": "NOPE"}, "universe"),
    ({"ef_search": 0}, "ef_search"),
]


def test_bad_input_is_a_problem_naming_the_field(built: httpx.Client) -> None:
    for params, field in BAD_INPUT:  # one database for all: each case reads only
        body = _problem(built.get("/api/v1/analogs/SPX", params=params), 400)
        named = {error.get("field") or error.get("key") for error in body["errors"]}
        assert field in named, (params, body)


def test_unknown_symbols_are_404(built: httpx.Client, api_keys: ApiKeys) -> None:
    assert "NOPE" in _problem(built.get("/api/v1/analogs/NOPE"), 404)["detail"]
    build = built.post("/api/v1/analogs/build", json={"symbols": ["NOPE"]})
    assert "NOPE" in _problem(build, 404)["detail"]
    read_only = built.post(
        "/api/v1/analogs/build", json={}, headers={"Authorization": f"Bearer {api_keys.read}"}
    )
    _problem(read_only, 403)


def test_a_date_before_the_first_bar_is_a_problem(built: httpx.Client) -> None:
    early = date(1990, 1, 2).isoformat()
    body = _problem(built.get("/api/v1/analogs/SPX", params={"date": early}), 400)
    assert "no bars on or before" in body["detail"]
