"""Strategy kinds, saved strategies and their live signals over real HTTP and Postgres."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import polars as pl
import psycopg
import pytest

from engine.backtest.engine import prepare, target_frame
from engine.backtest.runs import load_inputs
from engine.backtest.spec import BacktestSpec
from engine.io.backtests import latest_signals
from engine.strategies.base import get_strategy, strategy_names
from tests.integration.api.conftest import ApiKeys
from tests.integration.api.domain.backtests.conftest import SYMBOLS, bad_input, finished_job

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest

SPEC: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": SYMBOLS,
    "params": {"fast": 5, "slow": 20},
    "execution": {"fees_bps": 5},
}


def test_kinds_are_the_registry_with_defaults_docs_and_schemas(api: httpx.Client) -> None:
    response = api.get("/api/v1/strategies/kinds")

    assert response.status_code == 200, response.text
    assert response.json()["total"] == len(strategy_names())
    kinds = {kind["name"]: kind for kind in response.json()["items"]}
    assert sorted(kinds) == strategy_names()
    for name, kind in kinds.items():
        definition = get_strategy(name)
        assert kind["description"] == definition.description
        assert kind["uses_regimes"] == definition.params.uses_regimes
        defaults = msgspec.json.decode(msgspec.json.encode(definition.params()))
        assert {p["name"]: p["default"] for p in kind["parameters"]} == defaults
    sma = {p["name"]: p for p in kinds["sma_crossover"]["parameters"]}
    assert sma["fast"]["schema"] == {"type": "integer", "default": 50}
    assert sma["kind"]["schema"]["enum"] == ["ema", "sma"]
    assert all(p["doc"] for p in kinds["mean_reversion"]["parameters"])
    assert kinds["regime_filter"]["uses_regimes"] is True
    second = api.get("/api/v1/strategies/kinds", params={"limit": 1, "offset": 1}).json()
    assert [k["name"] for k in second["items"]] == strategy_names()[1:2]


def test_save_list_get_replace_and_delete_a_strategy(api: httpx.Client) -> None:
    created = api.post("/api/v1/strategies", json={"name": "fast-cross", "spec": SPEC})
    again = api.post("/api/v1/strategies", json={"name": "fast-cross", "spec": SPEC})
    api.post("/api/v1/strategies", json={"name": "a-hold", "spec": {**SPEC, "params": {}}})

    assert created.status_code == 201, created.text
    saved = created.json()
    assert saved["name"] == "fast-cross" and saved["kind"] == "sma_crossover"
    assert saved["spec"]["params"] == {"fast": 5, "slow": 20}
    assert saved["spec"]["execution"]["fees_bps"] == 5
    assert again.status_code == 409
    assert "PUT /api/v1/strategies/fast-cross" in again.json()["detail"]

    listed = api.get("/api/v1/strategies", params={"limit": 1}).json()
    assert listed["total"] == 2 and [s["name"] for s in listed["items"]] == ["a-hold"]
    assert api.get("/api/v1/strategies/fast-cross").json() == saved

    replaced = api.put("/api/v1/strategies/fast-cross", json={**SPEC, "params": {"fast": 8}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["id"] == saved["id"]
    assert replaced.json()["spec"]["params"]["fast"] == 8
    assert replaced.json()["updated_at"] > saved["updated_at"]

    assert api.delete("/api/v1/strategies/fast-cross").status_code == 204
    assert api.get("/api/v1/strategies/fast-cross").status_code == 404
    assert api.delete("/api/v1/strategies/fast-cross").status_code == 404
    assert api.get("/api/v1/strategies").json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "spec": {**SPEC, "strategy": "sma_crossoverr"}}, "spec.strategy", "known"),
        (
            {"name": "x", "spec": {**SPEC, "params": {"fast": 50, "slow": 20}}},
            "spec.params",
            "slow (20) must be greater than fast (50)",
        ),
        (
            {"name": "x", "spec": {**SPEC, "params": {"fastt": 5}}},
            "spec.params",
            "unknown field `fastt`",
        ),
        (
            {"name": "x", "spec": {**SPEC, "symbols": ["A", "A"]}},
            "spec.symbols",
            "must not repeat",
        ),
        (
            {"name": "x", "spec": {**SPEC, "start": "2021-01-02", "end": "2021-01-01"}},
            "spec.start",
            "is after end",
        ),
        ({"name": "kinds", "spec": SPEC}, "name", "reserved"),
    ],
)
def test_bad_strategies_are_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str, message: str
) -> None:
    got_field, got_message = bad_input(api.post("/api/v1/strategies", json=body))

    assert (got_field, message in got_message) == (field, True), got_message


def test_engine_rules_inside_nested_structs_are_400s_too(api: httpx.Client) -> None:
    fees = {"name": "x", "spec": {**SPEC, "execution": {"fees_bps": -5}}}
    grid = {"name": "x", "spec": {**SPEC, "grid": {"fast": [5, 10]}}}

    for body, text in ((fees, "fees_bps must be in [0, 10000)"), (grid, "grid")):
        response = api.post("/api/v1/strategies", json=body)
        assert response.status_code == 400, response.text
        assert text in str(response.json()), response.text
    assert api.get("/api/v1/strategies").json()["total"] == 0


def test_writes_need_the_write_scope(http: httpx.Client, api_keys: ApiKeys) -> None:
    read = {"X-API-Key": api_keys.read}
    body = {"name": "x", "spec": SPEC}

    for response in (
        http.post("/api/v1/strategies", json=body, headers=read),
        http.put("/api/v1/strategies/x", json=SPEC, headers=read),
        http.delete("/api/v1/strategies/x", headers=read),
        http.post("/api/v1/signals", json={}, headers=read),
    ):
        assert response.status_code == 403, response.text
        assert "'write' scope" in response.json()["detail"]
    assert http.get("/api/v1/strategies", headers=read).json()["total"] == 0
    write = {"X-API-Key": api_keys.write}
    assert http.post("/api/v1/strategies", json=body, headers=write).status_code == 201


def test_signals_are_computed_by_a_job_and_served_latest_first(
    api: httpx.Client, database_url: str, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=400)
    api.post("/api/v1/strategies", json={"name": "fast-cross", "spec": SPEC})
    api.post(
        "/api/v1/strategies",
        json={"name": "hold", "spec": {**SPEC, "strategy": "buy_and_hold", "params": {}}},
    )
    assert api.get("/api/v1/signals").json()["total"] == 0  # cached empty: invalidated below

    one = finished_job(api, api.post("/api/v1/signals", json={"strategy": "fast-cross"}))
    every = finished_job(api, api.post("/api/v1/signals", json={}))

    assert one["job"] == "signals.compute" and one["result"] == {"strategies": 1, "signals": 2}
    assert every["result"] == {"strategies": 2, "signals": 4}
    page = api.get("/api/v1/signals", params={"limit": 3}).json()
    assert page["total"] == 4 and len(page["items"]) == 3
    assert [(s["strategy"], s["symbol"]) for s in page["items"]] == [
        ("fast-cross", "SYN0000"),
        ("fast-cross", "SYN0001"),
        ("hold", "SYN0000"),
    ]
    held = api.get("/api/v1/signals", params={"strategy": "hold", "symbol": "SYN0001"}).json()
    assert held["total"] == 1 and held["items"][0]["target"] == 1.0
    # the served targets are the backtest's next targets, as the engine stores them
    crossed = api.get("/api/v1/signals", params={"strategy": "fast-cross"}).json()["items"]
    spec = BacktestSpec.parse(SPEC)
    with psycopg.connect(database_url) as conn:
        stored = latest_signals(conn, "fast-cross").sort("symbol")
        bars, _ = load_inputs(conn, spec)
    lf, (key,) = target_frame(prepare(bars, spec), spec, spec.param_sets())
    last = lf.group_by("symbol").agg(pl.col(f"target:{key}").last()).collect().sort("symbol")
    targets = last[f"target:{key}"].fill_null(0.0).to_list()
    assert [s["target"] for s in crossed] == stored["target"].to_list() == targets
    assert crossed[0]["context"]["strategy"] == "sma_crossover"

    assert api.delete("/api/v1/strategies/hold").status_code == 204
    assert api.get("/api/v1/signals").json()["total"] == 2  # its signals went with it
    missing = api.post("/api/v1/signals", json={"strategy": "hold"})
    assert missing.status_code == 404
