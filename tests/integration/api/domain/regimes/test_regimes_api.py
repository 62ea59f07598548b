"""Regime routes over real HTTP: fit as a job, then runs, labels, snapshot, stats, forecast."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from engine.io.regimes import create_run, finish_run
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest

PROBLEM = "application/problem+json"
SYMBOLS = ["SYN0000", "SYN0001"]


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    return str(body["detail"]) + " " + str(body.get("extra", ""))


def _wait_for_job(api: httpx.Client, settings: Settings, job_id: int) -> dict[str, Any]:
    """The finished job: from GET /api/v1/jobs/{id}, else straight from `job_runs`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = api.get(f"/api/v1/jobs/{job_id}")
        if response.status_code == 200:
            job = dict(response.json())
        else:
            assert settings.database_url is not None
            with psycopg.connect(settings.database_url) as conn:
                row = conn.execute(
                    "SELECT status::text, result, error FROM job_runs WHERE id = %s", (job_id,)
                ).fetchone()
            assert row is not None
            job = {"status": row[0], "result": row[1], "error": row[2]}
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _fit(api: httpx.Client, settings: Settings, **body: Any) -> int:
    response = api.post("/api/v1/regimes/fits", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["job"] == "regimes.fit"
    assert response.headers["location"] == accepted["status_url"]
    job = _wait_for_job(api, settings, accepted["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["symbols"] == sorted(body["symbols"])
    assert job["result"]["failures"] == {}
    return int(job["result"]["run_id"])


def _cache_count(api: httpx.Client, route: str, outcome: str) -> float:
    """regimelab_api_cache_requests_total{route=..., outcome=...} at /metrics (labels in any
    order; the registry is per process, so tests compare before and after)."""
    wanted = {f'route="{route}"', f'outcome="{outcome}"'}
    for line in api.get("/metrics").text.splitlines():
        match = re.match(r"^regimelab_api_cache_requests_total\{(.*)\} (\S+)$", line)
        if match and set(match.group(1).split(",")) == wanted:
            return float(match.group(2))
    return 0.0


def test_fit_then_read_runs_labels_snapshot_stats_and_forecast(
    api: httpx.Client, settings: Settings, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=500)
    snapshot_url = f"/api/v1/regimes/snapshot?symbols={','.join(SYMBOLS)}&model=hmm"

    before = api.get(snapshot_url)
    assert before.status_code == 200
    assert before.json()["items"] == []
    assert before.json()["missing"] == SYMBOLS
    assert "POST /api/v1/regimes/fits" in before.json()["detail"]

    run_id = _fit(api, settings, model="hmm", symbols=SYMBOLS, n_states=2)

    runs = api.get("/api/v1/regimes/runs", params={"model": "hmm", "symbol": "SYN0001"}).json()
    assert runs["total"] == 1 and runs["items"][0]["id"] == run_id
    assert runs["items"][0]["status"] == "succeeded"
    assert api.get("/api/v1/regimes/runs", params={"status": "failed"}).json()["total"] == 0
    run = api.get(f"/api/v1/regimes/runs/{run_id}").json()
    assert run["n_states"] == 2 and run["symbols"] == SYMBOLS
    assert run["params"]["features"] == ["log_return"]
    assert len(run["stats"]["symbols"]["SYN0000"]["transmat"]) == 2

    # labels: filtered by default, smoothed on request, paginated over bars
    filtered = api.get("/api/v1/regimes/labels", params={"symbol": "SYN0000", "limit": 1000})
    smoothed = api.get(
        "/api/v1/regimes/labels", params={"symbol": "SYN0000", "kind": "smoothed", "limit": 1000}
    )
    assert filtered.status_code == smoothed.status_code == 200, filtered.text
    f_items, s_items = filtered.json()["items"], smoothed.json()["items"]
    assert filtered.json()["total"] == smoothed.json()["total"] == 499 == len(f_items)
    assert [i["ts"] for i in f_items] == [i["ts"] for i in s_items]
    assert [i["probs"] for i in f_items] != [i["probs"] for i in s_items]
    first = f_items[0]
    assert first["run_id"] == run_id and first["name"] in ("calm", "turbulent")
    assert first["probability"] == pytest.approx(first["probs"][first["regime"]])
    assert abs(sum(first["probs"]) - 1) < 1e-9
    page = api.get(
        "/api/v1/regimes/labels",
        params={"symbol": "SYN0000", "limit": 10, "offset": 5, "run_id": run_id, "model": "hmm"},
    ).json()
    assert page["total"] == 499 and page["items"] == f_items[5:15]
    labels_hits = _cache_count(api, "regimes.labels", "hit")
    assert api.get(
        "/api/v1/regimes/labels", params={"symbol": "SYN0000", "limit": 1000}
    ).json() == (filtered.json())
    assert _cache_count(api, "regimes.labels", "hit") == labels_hits + 1
    window = api.get(
        "/api/v1/regimes/labels",
        params={
            "symbol": "SYN0000",
            "start": f_items[10]["ts"][:10],
            "end": f_items[19]["ts"][:10],
        },
    ).json()
    assert window["total"] == 10 and window["items"] == f_items[10:20]

    # snapshot: the last filtered label of each symbol, named, served from Redis the 2nd time
    hits = _cache_count(api, "regimes.snapshot", "hit")
    now = api.get(snapshot_url).json()
    assert now["missing"] == [] and now["detail"] is None
    assert [i["symbol"] for i in now["items"]] == SYMBOLS
    item = now["items"][0]
    assert item["ts"] == f_items[-1]["ts"] and item["regime"] == f_items[-1]["regime"]
    assert item["name"] == f_items[-1]["name"] and item["run_id"] == run_id
    assert item["days_in_regime"] >= 1 and item["n_states"] == 2
    assert api.get(snapshot_url).json() == now
    assert _cache_count(api, "regimes.snapshot", "hit") == hits + 1

    # stats: per-regime statistics and the transition matrix
    stats = api.get("/api/v1/regimes/stats", params={"symbol": "SYN0000"}).json()
    assert stats["run_id"] == run_id and stats["model"] == "hmm"
    assert [r["regime"] for r in stats["regimes"]] == [0, 1]
    assert {r["name"] for r in stats["regimes"]} == {"calm", "turbulent"}
    calm, turbulent = sorted(stats["regimes"], key=lambda r: r["volatility"])
    assert calm["name"] == "calm" and turbulent["name"] == "turbulent"
    assert sum(r["bars"] for r in stats["regimes"]) == 499
    assert sum(r["share_of_time"] for r in stats["regimes"]) == pytest.approx(1)
    assert all(r["expected_duration"] >= 1 and r["spells"] >= 1 for r in stats["regimes"])
    assert all(r["max_duration"] >= r["mean_duration"] for r in stats["regimes"])
    assert [len(row) for row in stats["transition_matrix"]] == [2, 2]

    # forecast: the last filtered probabilities through the transition matrix
    forecast = api.get("/api/v1/regimes/forecast", params={"symbol": "SYN0001", "horizon": 250})
    assert forecast.status_code == 200, forecast.text
    body = forecast.json()
    assert [s["step"] for s in body["steps"]] == list(range(1, 251))
    assert all(abs(sum(s["probs"]) - 1) < 1e-9 for s in body["steps"])
    assert set(body["names"]) == {"calm", "turbulent"}

    # a new fit invalidates the cached snapshot
    misses = _cache_count(api, "regimes.snapshot", "miss")
    second = _fit(api, settings, model="hmm", symbols=["SYN0000"], n_states=3)
    after = api.get(snapshot_url).json()
    assert _cache_count(api, "regimes.snapshot", "miss") == misses + 1
    assert [i["run_id"] for i in after["items"]] == [second, run_id]
    assert after["items"][0]["n_states"] == 3
    assert after["items"][0]["name"] in ("calm", "normal", "turbulent")
    runs = api.get("/api/v1/regimes/runs", params={"limit": 1}).json()
    assert runs["total"] == 2 and [r["id"] for r in runs["items"]] == [second]


def test_models_list_parameters_and_defaults(api: httpx.Client) -> None:
    models = api.get("/api/v1/regimes/models").json()

    assert models["total"] == 5
    by_name = {m["name"]: m for m in models["items"]}
    assert set(by_name) == {"rules", "hmm", "markov_switching", "jump", "changepoint"}
    hmm = {p["name"]: p for p in by_name["hmm"]["parameters"]}
    assert hmm["n_iter"] == {"name": "n_iter", "type": "int", "default": 100, "choices": None}
    assert by_name["rules"]["n_states"] == [2, 4]
    offline = {p["name"]: p for p in by_name["changepoint"]["parameters"]}["offline_method"]
    assert offline["choices"] and offline["default"] in offline["choices"]


def test_bad_input_is_a_4xx_problem(
    api: httpx.Client, api_url: str, api_keys: ApiKeys, settings: Settings, ingest: Ingest
) -> None:
    ingest("synthetic", "1", n_days=60)
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        failed = create_run(conn, model="jump", n_states=2, symbols=["SYN0000"], params={})
        finish_run(conn, failed, status="failed", error="too little history")
    fits = "/api/v1/regimes/fits"

    detail = _problem(api.post(fits, json={"model": "hmmm", "symbols": ["SYN0000"]}), 400)
    assert "hmm, markov_switching" in detail
    detail = _problem(api.post(fits, json={"model": "hmm", "symbols": ["NOPE"]}), 400)
    assert "NOPE" in detail and "symbols with bars: SYN0000" in detail
    detail = _problem(
        api.post(fits, json={"model": "hmm", "symbols": ["SYN0000"], "features": ["x"]}), 400
    )
    assert "known features" in detail
    detail = _problem(
        api.post(fits, json={"model": "hmm", "symbols": ["SYN0000"], "params": {"nope": 1}}), 400
    )
    assert "n_iter" in detail
    detail = _problem(
        api.post(fits, json={"model": "hmm", "symbols": ["SYN0000"], "params": {"n_iter": "x"}}),
        400,
    )
    for body in (
        {"model": "hmm", "symbols": []},
        {"model": "hmm", "symbols": ["SYN0000"], "n_states": 9},
        {"model": "rules", "symbols": ["SYN0000"], "n_states": 3},
        {"model": "hmm", "symbols": ["SYN0000"], "start": "2020-02-01", "end": "2020-01-01"},
        {"model": "hmm", "symbols": ["SYN0000"], "interval": "2d"},
        {"model": "hmm", "symbols": ["SYN 0000"]},
        {"model": "hmm", "symbols": ["SYN0000"], "walk_forward": {"mode": "sideways"}},
        {"model": "hmm", "symbols": ["SYN0000"], "surprise": True},
    ):
        _problem(api.post(fits, json=body), 400)
    read_only = httpx.post(
        f"{api_url}{fits}",
        json={"model": "hmm", "symbols": ["SYN0000"]},
        headers={"X-API-Key": api_keys.read},
    )
    assert "'write' scope" in _problem(read_only, 403)

    assert "no regime run 99" in _problem(api.get("/api/v1/regimes/runs/99"), 404)
    _problem(api.get("/api/v1/regimes/runs/0"), 400)
    _problem(api.get("/api/v1/regimes/runs", params={"model": "nope"}), 400)
    _problem(api.get("/api/v1/regimes/runs", params={"status": "nope"}), 400)
    detail = _problem(api.get("/api/v1/regimes/labels", params={"symbol": "SYN0000"}), 404)
    assert "POST /api/v1/regimes/fits" in detail
    _problem(api.get("/api/v1/regimes/labels", params={"symbol": "SYN0000", "kind": "x"}), 400)
    _problem(api.get("/api/v1/regimes/labels", params={"symbol": "a\x00b"}), 400)
    _problem(api.get("/api/v1/regimes/labels", params={"symbol": "SYN0000", "run_id": 70}), 404)
    labels_of_failed = {"symbol": "SYN0000", "run_id": failed}
    assert "is failed" in _problem(api.get("/api/v1/regimes/labels", params=labels_of_failed), 409)
    detail = _problem(
        api.get("/api/v1/regimes/stats", params={**labels_of_failed, "model": "hmm"}), 400
    )
    assert "fitted jump, not hmm" in detail
    run = api.get(f"/api/v1/regimes/runs/{failed}").json()
    assert run["status"] == "failed" and run["error"] == "too little history"
    _problem(api.get("/api/v1/regimes/stats", params={"symbol": "SYN0000", "model": "x"}), 400)
    _problem(api.get("/api/v1/regimes/stats", params={"symbol": "SYN0000"}), 404)
    for horizon in (0, 251):
        _problem(
            api.get("/api/v1/regimes/forecast", params={"symbol": "SYN0000", "horizon": horizon}),
            400,
        )
    _problem(api.get("/api/v1/regimes/snapshot", params={"symbols": ",,"}), 400)
    _problem(api.get("/api/v1/regimes/snapshot", params={"symbols": "SPX,a b"}), 400)
    _problem(api.get("/api/v1/regimes/snapshot", params={"model": "nope"}), 400)
