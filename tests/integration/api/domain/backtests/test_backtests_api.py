"""Backtests over real HTTP: queued as jobs, stored by the engine, read back exactly."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import polars as pl
import psycopg
import pytest

from engine.backtest.engine import BacktestResult, run_backtest
from engine.backtest.metrics import METRICS
from engine.backtest.runs import load_inputs
from engine.backtest.spec import BacktestSpec
from engine.backtest.walkforward import WalkForwardSpec, walk_forward
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import RegimeSpec
from tests.integration.api.conftest import ApiKeys
from tests.integration.api.domain.backtests.conftest import SYMBOLS, bad_input, finished_job

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest

SPEC: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": SYMBOLS,
    "params": {"fast": 5, "slow": 20},
    "execution": {"fees_bps": 10},
}
NUMERIC = [m for m in METRICS if m not in ("start", "end")]


def _engine(database_url: str, spec: BacktestSpec) -> BacktestResult:
    with psycopg.connect(database_url) as conn:
        bars, regimes = load_inputs(conn, spec)
    return run_backtest(bars, spec, regimes)


def _rows(frame: pl.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Engine metrics by (params JSON, symbol)."""
    return {
        (json_key(msgspec.json.decode(row["params"])), row["symbol"]): row
        for row in frame.iter_rows(named=True)
    }


def json_key(params: Any) -> str:
    return msgspec.json.encode(params, order="sorted").decode()


def _assert_same_metrics(served: dict[str, Any], computed: dict[str, Any]) -> None:
    for name in NUMERIC:
        if computed[name] is None:
            assert served[name] is None, name
        else:
            assert served[name] == pytest.approx(computed[name], rel=1e-12, abs=1e-12), name


def test_a_backtest_job_stores_what_the_engine_computes(
    api: httpx.Client, database_url: str, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=400)
    run_regime_fit(database_url, RegimeSpec(model="rules"), SYMBOLS, workers=1)
    body = {**SPEC, "regimes": {"model": "rules"}}

    job = finished_job(api, api.post("/api/v1/backtests", json={"spec": body}))

    summary = job["result"]
    assert job["job"] == "backtest" and job["progress"] == 1.0
    assert summary["kind"] == "single" and summary["results"] == 2
    run_id = summary["run_id"]
    run = api.get(f"/api/v1/backtests/{run_id}").json()
    assert run["status"] == "succeeded" and run["kind"] == "single"
    assert run["strategy"] == "sma_crossover" and run["symbols"] == SYMBOLS
    spec = BacktestSpec.parse(run["spec"])
    assert spec == BacktestSpec.parse(body)  # the stored spec reproduces the run
    assert run["summary"]["results"] == 2
    assert run["summary"]["best"]["metrics"]["sharpe"] == summary["best"]["sharpe"]

    expected = _engine(database_url, spec)
    computed = _rows(expected.metrics)
    results = api.get(f"/api/v1/backtests/{run_id}/results").json()
    assert results["total"] == 2 and [r["symbol"] for r in results["items"]] == SYMBOLS
    for result in results["items"]:
        _assert_same_metrics(
            result["metrics"], computed[(json_key(result["params"]), result["symbol"])]
        )
    assert max(r["metrics"]["sharpe"] for r in results["items"]) == summary["best"]["sharpe"]
    assert api.get(f"/api/v1/backtests/{run_id}/results").json() == results  # cached

    first = results["items"][0]
    curve = api.get(f"/api/v1/backtests/{run_id}/equity", params={"result": first["id"]}).json()
    assert expected.equity is not None
    own = expected.equity.filter(pl.col("symbol") == first["symbol"]).sort("ts")
    assert [datetime.fromisoformat(ts) for ts in curve["ts"]] == own["ts"].to_list()
    assert curve["equity"] == pytest.approx(own["equity"].to_list(), rel=1e-12)
    assert curve["symbol"] == first["symbol"] and curve["params"] == first["params"]
    again = api.get(f"/api/v1/backtests/{run_id}/equity", params={"result": first["id"]})
    assert again.json() == curve  # cached
    field, message = bad_input(api.get(f"/api/v1/backtests/{run_id}/equity"))
    assert field == "result" and "several results" in message

    regimes = api.get(f"/api/v1/backtests/{run_id}/regimes", params={"result": first["id"]})
    assert regimes.status_code == 200, regimes.text
    served = {r["regime"]: r["metrics"] for r in regimes.json()["regimes"]}
    assert expected.regime_metrics is not None
    mine = expected.regime_metrics.filter(pl.col("symbol") == first["symbol"])
    by_regime = {
        "unknown" if row["regime"] is None else str(row["regime"]): row
        for row in mine.iter_rows(named=True)
    }
    assert set(served) == set(by_regime) and {"0", "1"} <= set(served)
    for label, metrics in served.items():
        _assert_same_metrics(metrics, by_regime[label])
        assert metrics["share_of_time"] == pytest.approx(by_regime[label]["share_of_time"])

    listed = api.get("/api/v1/backtests").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == run_id
    for query, total in (
        ({"status": "succeeded"}, 1),
        ({"status": "failed"}, 0),
        ({"strategy": "sma_crossover"}, 1),
        ({"strategy": "momentum"}, 0),
    ):
        assert api.get("/api/v1/backtests", params=query).json()["total"] == total, query


def test_a_sweep_is_sorted_paged_and_kept_without_curves_when_large(
    api: httpx.Client, database_url: str, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=400)
    grid = {"fast": [5, 10], "slow": [20, 40]}

    sweep = finished_job(api, api.post("/api/v1/backtests", json={"spec": SPEC, "grid": grid}))

    run_id = sweep["result"]["run_id"]
    assert sweep["result"]["kind"] == "sweep" and sweep["result"]["results"] == 8
    spec = BacktestSpec.parse({**SPEC, "params": {}, "grid": grid})
    computed = _rows(_engine(database_url, spec).metrics)
    ranked = sorted(computed.values(), key=lambda row: row["sharpe"], reverse=True)
    top = api.get(
        f"/api/v1/backtests/{run_id}/results",
        params={"sort": "sharpe", "desc": "true", "limit": 3},
    ).json()
    assert top["total"] == 8 and len(top["items"]) == 3
    assert [r["metrics"]["sharpe"] for r in top["items"]] == pytest.approx(
        [row["sharpe"] for row in ranked[:3]], rel=1e-12
    )
    for result in top["items"]:
        _assert_same_metrics(
            result["metrics"], computed[(json_key(result["params"]), result["symbol"])]
        )
    assert sweep["result"]["best"]["sharpe"] == top["items"][0]["metrics"]["sharpe"]
    rest = api.get(
        f"/api/v1/backtests/{run_id}/results",
        params={"sort": "sharpe", "desc": "true", "offset": 3},
    ).json()
    assert [r["metrics"]["sharpe"] for r in rest["items"]] == pytest.approx(
        [row["sharpe"] for row in ranked[3:]], rel=1e-12
    )
    shallow = api.get(
        f"/api/v1/backtests/{run_id}/results",
        params={"sort": "max_drawdown", "symbol": "SYN0001"},
    ).json()
    drawdowns = [r["metrics"]["max_drawdown"] for r in shallow["items"]]
    assert shallow["total"] == 4 and drawdowns == sorted(drawdowns)
    field, message = bad_input(api.get(f"/api/v1/backtests/{run_id}/results?sort=nope"))
    assert field == "sort" and "sharpe" in message

    # 101 parameter sets x 2 symbols: more results than the engine keeps curves for
    wide = {"fast": list(range(2, 103)), "slow": [150]}
    large = finished_job(api, api.post("/api/v1/backtests", json={"spec": SPEC, "grid": wide}))
    large_id = large["result"]["run_id"]
    assert large["result"]["results"] == 202
    one = api.get(f"/api/v1/backtests/{large_id}/results", params={"limit": 1}).json()
    missing = api.get(f"/api/v1/backtests/{large_id}/equity?result={one['items'][0]['id']}")
    assert missing.status_code == 404
    assert "at most 200 results" in missing.json()["detail"]
    runs = api.get("/api/v1/backtests").json()["items"]
    assert [r["id"] for r in runs] == [large_id, run_id]  # newest first


def test_a_saved_strategy_walks_forward_with_a_bootstrap(
    api: httpx.Client, database_url: str, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=400)
    assert api.post("/api/v1/strategies", json={"name": "trend", "spec": SPEC}).status_code == 201
    request = {
        "strategy": "trend",
        "grid": {"fast": [5, 10]},
        "walk_forward": {"train": 150, "test": 50},
        "monte_carlo": {"paths": 200, "block": 10},
    }

    job = finished_job(api, api.post("/api/v1/backtests", json=request))
    narrowed = finished_job(
        api, api.post("/api/v1/backtests", json={"strategy": "trend", "symbols": ["SYN0001"]})
    )

    summary = job["result"]
    assert summary["kind"] == "walk_forward" and summary["results"] == 2
    assert summary["windows"] == 5  # (400 - 150) / 50
    carlo = summary["monte_carlo"]
    assert carlo["paths"] == 200 and len(carlo["summary"]) == 2 * 4
    assert {row["symbol"] for row in carlo["summary"]} == set(SYMBOLS)
    spec = BacktestSpec.parse({**SPEC, "params": {"slow": 20}, "grid": {"fast": [5, 10]}})
    walk = WalkForwardSpec(train=150, test=50)
    with psycopg.connect(database_url) as conn:
        bars, _ = load_inputs(conn, spec)
    expected = walk_forward(bars, spec, walk).metrics
    run_id = summary["run_id"]
    run = api.get(f"/api/v1/backtests/{run_id}").json()
    assert run["kind"] == "walk_forward" and run["strategy_name"] == "trend"
    assert run["walk_forward"]["train"] == 150
    results = api.get(f"/api/v1/backtests/{run_id}/results").json()["items"]
    for result in results:
        assert isinstance(result["params"], list) and len(result["params"]) == 5
        row = expected.filter(pl.col("symbol") == result["symbol"]).row(0, named=True)
        _assert_same_metrics(result["metrics"], row)
    curve = api.get(f"/api/v1/backtests/{run_id}/equity?result={results[0]['id']}").json()
    assert len(curve["ts"]) == len(curve["equity"]) == 250  # the stitched test windows

    assert narrowed["result"]["results"] == 1
    single = api.get(f"/api/v1/backtests/{narrowed['result']['run_id']}").json()
    assert single["symbols"] == ["SYN0001"] and single["spec"]["params"] == SPEC["params"]
    only = api.get(f"/api/v1/backtests/{single['id']}/equity").json()  # its only result
    assert only["symbol"] == "SYN0001"
    trend = api.get("/api/v1/backtests", params={"strategy": "trend"}).json()
    assert trend["total"] == 2 and {r["strategy_name"] for r in trend["items"]} == {"trend"}


def test_bad_requests_are_400_naming_the_field_before_any_job(
    api: httpx.Client, database_url: str, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=400)
    api.post("/api/v1/strategies", json={"name": "trend", "spec": SPEC})
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({}, "spec", "give either spec"),
        ({"spec": SPEC, "strategy": "trend"}, "spec", "give either spec"),
        ({"strategy": "nope"}, "strategy", "no saved strategy named 'nope'"),
        ({"spec": {**SPEC, "strategy": "smaa"}}, "spec.strategy", "unknown strategy 'smaa'"),
        ({"spec": {**SPEC, "params": {"fast": 0}}}, "spec.params", "fast"),
        ({"spec": {**SPEC, "symbols": ["NOPE"]}}, "spec.symbols", "no 1d bars stored for NOPE"),
        ({"spec": {**SPEC, "interval": "1h"}}, "spec.symbols", "no 1h bars stored"),
        ({"spec": {**SPEC, "benchmark": "NOPE"}}, "spec.benchmark", "NOPE"),
        ({"spec": {**SPEC, "start": "2099-01-01"}}, "spec.start", "on or after 2099-01-01"),
        ({"spec": SPEC, "symbols": ["NOPE"]}, "symbols", "NOPE"),
        ({"strategy": "trend", "start": "2099-01-01"}, "start", "2099-01-01"),
        ({"spec": {**SPEC, "strategy": "regime_filter", "params": {}}}, "spec.strategy", "regimes"),
        ({"spec": SPEC, "grid": {"fastt": [1, 2]}}, "grid", "unknown field `fastt`"),
        ({"spec": SPEC, "grid": {"fast": [50], "slow": [20]}}, "grid", "greater than fast"),
        (
            {"spec": SPEC, "grid": {"fast": list(range(1, 201)), "slow": list(range(300, 401))}},
            "grid",
            "20,200 parameter sets",
        ),
        (
            {"spec": SPEC, "grid": {"fast": [5, 10]}, "monte_carlo": {}},
            "monte_carlo",
            "a sweep keeps no equity curves",
        ),
    ]
    for body, field, text in cases:
        got_field, message = bad_input(api.post("/api/v1/backtests", json=body))
        assert (got_field, text in message) == (field, True), (body, got_field, message)
    for body in (
        {"spec": SPEC, "walk_forward": {"metric": "bars"}},
        {"spec": SPEC, "monte_carlo": {"paths": 0}},
        {"spec": {**SPEC, "execution": {"fees_bps": -1}}},
        {"spec": SPEC, "grid": {"fast": []}},
        {"spec": SPEC, "extra": 1},
    ):
        response = api.post("/api/v1/backtests", json=body)
        assert response.status_code == 400, (body, response.text)
    with psycopg.connect(database_url) as conn:
        queued = conn.execute("SELECT count(*) FROM job_runs").fetchone()
    assert queued == (0,)

    # valid up front, failing in the engine (no labels of that model): a failed job and run
    failing = {**SPEC, "strategy": "regime_filter", "params": {}, "regimes": {"model": "hmm"}}
    accepted = api.post("/api/v1/backtests", json={"spec": failing})
    with pytest.raises(AssertionError, match="no regime labels for model 'hmm'"):
        finished_job(api, accepted)
    failed = api.get("/api/v1/backtests", params={"status": "failed"}).json()
    assert failed["total"] == 1 and "no regime labels" in failed["items"][0]["error"]


def test_unknown_runs_are_404_and_writes_need_the_write_scope(
    api: httpx.Client, http: httpx.Client, api_keys: ApiKeys
) -> None:
    for path in ("", "/results", "/equity", "/regimes"):
        response = api.get(f"/api/v1/backtests/999{path}")
        assert response.status_code == 404, response.text
        assert "no backtest run 999" in response.json()["detail"]
    read = {"X-API-Key": api_keys.read}
    denied = http.post("/api/v1/backtests", json={"spec": SPEC}, headers=read)
    assert denied.status_code == 403 and "'write' scope" in denied.json()["detail"]
    assert http.get("/api/v1/backtests", headers=read).json()["total"] == 0
