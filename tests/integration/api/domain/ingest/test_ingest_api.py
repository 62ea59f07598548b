"""`/api/v1/ingest` and `/api/v1/providers`: a checked ingest queued as a job and recorded
as a run, providers, and provider TTLs (admin only)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import psycopg

from api.domain.ingest.jobs import ingest_watchlist
from api.domain.ingest.schemas import WatchlistParams
from api.lib.jobs import JobContext, JobEnv
from api.server.app import create_app
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi
from tests.integration.conftest import Ingest

PROBLEM = "application/problem+json"


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _problem(response: httpx.Response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body
    return str(body["detail"])


def _finished_job(api: httpx.Client, settings: Settings, job_id: int) -> dict[str, Any]:
    """The job's row once it ends: through `GET /jobs/{id}` when that route exists."""
    paths = api.get("/schema/openapi.json").json()["paths"]
    through_api = "/api/v1/jobs/{job_id}" in paths
    assert settings.database_url is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if through_api:
            row = api.get(f"/api/v1/jobs/{job_id}").json()
        else:
            with psycopg.connect(settings.database_url) as conn:
                status, result, error = conn.execute(
                    "SELECT status::text, result, error FROM job_runs WHERE id = %s", (job_id,)
                ).fetchone() or (None, None, None)
            row = {"status": status, "result": result, "error": error}
        if row["status"] in {"succeeded", "failed"}:
            return dict(row)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_ingest_is_a_job_and_its_run_is_listed(
    api: httpx.Client, api_keys: ApiKeys, settings: Settings
) -> None:
    body = {"provider": "synthetic", "symbols": "2", "options": {"n_days": 60, "seed": 7}}

    accepted = api.post("/api/v1/ingest", json=body, headers=_as(api_keys.write))

    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["job"] == "ingest" and job["status"] == "queued"
    assert accepted.headers["location"] == job["status_url"] == f"/api/v1/jobs/{job['job_id']}"
    finished = _finished_job(api, settings, job["job_id"])
    assert finished["status"] == "succeeded", finished
    result = finished["result"]
    assert result["rows_fetched"] == 120 and result["rows_upserted"] == 120
    assert result["rows_rejected"] == 0
    assert result["provider_calls"] == {"synthetic": {"miss": 1}}

    runs = api.get("/api/v1/ingest/runs").json()
    run = api.get(f"/api/v1/ingest/runs/{result['run_id']}").json()
    bars = api.get("/api/v1/instruments/SYN0001/bars").json()["bars"]

    assert runs["total"] == 1
    assert runs["items"][0] == run
    assert run["id"] == result["run_id"]
    assert run["provider"] == "synthetic" and run["status"] == "succeeded"
    assert run["symbols"] == ["SYN0000", "SYN0001"]
    assert run["rows_upserted"] == 120
    assert run["quality"]["cache"] == {"miss": 1}
    assert run["finished_at"] >= run["started_at"]
    assert len(bars) == 60


def test_runs_newest_first_filtered_and_unknown(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "1", n_days=20)
    ingest("sample", "VIX")

    everything = api.get("/api/v1/ingest/runs").json()
    synthetic = api.get("/api/v1/ingest/runs", params={"provider": "synthetic"}).json()
    failed = api.get("/api/v1/ingest/runs", params={"status": "failed"}).json()
    second = api.get("/api/v1/ingest/runs", params={"limit": 1, "offset": 1}).json()

    assert [r["provider"] for r in everything["items"]] == ["sample", "synthetic"]
    assert synthetic["total"] == 1 and synthetic["items"][0]["symbols"] == ["SYN0000"]
    assert failed == {"items": [], "total": 0, "limit": 100, "offset": 0}
    assert second["total"] == 2 and second["items"][0]["provider"] == "synthetic"
    _problem(api.get("/api/v1/ingest/runs/999999"), 404)
    _problem(api.get("/api/v1/ingest/runs", params={"status": "exploded"}), 400, "status")
    _problem(api.get("/api/v1/ingest/runs/0"), 400, "run_id")
    _problem(api.get("/api/v1/ingest/runs?provider=%00"), 400, "provider")


BAD_REQUESTS: list[tuple[dict[str, Any], str, str]] = [
    ({"provider": "nope", "symbols": "X"}, "provider", "known providers: sample, synthetic"),
    ({"provider": "synthetic", "symbols": "1", "interval": "1m"}, "interval", "one of 1d"),
    ({"provider": "sample", "symbols": ["SPX", "FOO"]}, "symbols", "does not know 'FOO'"),
    ({"provider": "sample"}, "symbols", "symbols are required"),
    ({"provider": "synthetic", "symbols": "0"}, "symbols", "between 1 and 100000"),
    ({"provider": "synthetic", "symbols": "20000"}, "symbols", "at most 10000"),
    (
        {"provider": "sample", "symbols": "SPX", "start": "2010-01-02", "end": "2009-01-01"},
        "start",
        "is after end",
    ),
    ({"provider": "sample", "symbols": "SPX", "start": "soon"}, "start", "invalid input"),
    ({"provider": "sample", "symbols": "SPX", "end": "2020-02-30"}, "end", "YYYY-MM-DD"),
    (
        {"provider": "synthetic", "symbols": "1", "options": {"n_days": "many"}},
        "options",
        "n_days",
    ),
    (
        {"provider": "synthetic", "symbols": "1", "options": {"symbols": ["X"]}},
        "options",
        "as fields",
    ),
    ({"provider": "files", "symbols": "X"}, "options", "path"),
    ({"provider": "files", "options": {"path": "/tmp/a\u0000"}}, "options", "NUL"),
    ({"provider": "synthetic", "symbols": "A\u0000,B"}, "symbols", "control characters"),
    ({"provider": "synthetic", "symbols": ["A B"]}, "symbols[0]", "invalid input"),
]


def test_bad_requests_are_400_naming_the_choices(api: httpx.Client) -> None:
    for body, field, says in BAD_REQUESTS:
        assert says in _problem(api.post("/api/v1/ingest", json=body), 400, field), body
    assert api.get("/api/v1/ingest/runs").json()["total"] == 0


def test_starting_an_ingest_needs_a_write_key(api: httpx.Client, api_keys: ApiKeys) -> None:
    body = {"provider": "sample", "symbols": "SPX"}

    detail = _problem(api.post("/api/v1/ingest", json=body, headers=_as(api_keys.read)), 403)

    assert "'write' scope" in detail
    assert api.get("/api/v1/ingest/runs").json()["total"] == 0


def test_the_files_provider_needs_an_admin_key(api: httpx.Client, api_keys: ApiKeys) -> None:
    body = {"provider": "files", "options": {"path": "/etc"}}

    detail = _problem(api.post("/api/v1/ingest", json=body, headers=_as(api_keys.write)), 403)

    assert "admin" in detail
    assert api.get("/api/v1/jobs", params={"job": "ingest"}).json()["total"] == 0


def test_providers_list_datasets_and_credential_status(api: httpx.Client) -> None:
    page = api.get("/api/v1/providers").json()
    by_name = {p["name"]: p for p in page["items"]}

    assert page["total"] == len(page["items"]) >= 8
    synthetic = by_name["synthetic"]
    assert synthetic["network"] is False
    assert synthetic["credentials"] == [] and synthetic["credentials_configured"] is True
    bars = next(d for d in synthetic["datasets"] if d["dataset"] == "bars")
    assert bars == {
        "dataset": "bars",
        "intervals": ["1d"],
        "default_ttl_seconds": 3600,
        "max_symbols": None,
    }
    polygon = by_name["polygon"]
    assert polygon["credentials"] == [{"name": "POLYGON_API_KEY", "configured": False}]
    assert polygon["credentials_configured"] is False
    assert api.get("/api/v1/providers", params={"limit": 2}).json()["total"] == page["total"]


def _ttl(api: httpx.Client, provider: str, dataset: str) -> dict[str, Any]:
    items = api.get("/api/v1/providers/ttls", params={"limit": 1000}).json()["items"]
    return next(t for t in items if t["provider"] == provider and t["dataset"] == dataset)


def test_ttls_set_and_dropped_by_admins_only(api: httpx.Client, api_keys: ApiKeys) -> None:
    url = "/api/v1/providers/synthetic/ttls/bars"
    default = _ttl(api, "synthetic", "bars")

    as_write = api.put(url, json={"ttl_seconds": 5}, headers=_as(api_keys.write))
    stored = api.put(url, json={"ttl_seconds": 0})
    listed = _ttl(api, "synthetic", "bars")
    read_delete = api.delete(url, headers=_as(api_keys.read))
    dropped = api.delete(url)
    again = api.delete(url)

    assert default == {
        "provider": "synthetic",
        "dataset": "bars",
        "ttl_seconds": 3600,
        "source": "default",
        "default_ttl_seconds": 3600,
        "updated_at": None,
    }
    assert "'admin' scope" in _problem(as_write, 403)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {**listed, "ttl_seconds": 0, "source": "table"}
    assert listed["updated_at"] is not None
    _problem(read_delete, 403)
    assert dropped.status_code == 204 and again.status_code == 204
    assert _ttl(api, "synthetic", "bars") == default


def test_ttl_routes_reject_unknown_datasets_and_bad_values(api: httpx.Client) -> None:
    _problem(api.put("/api/v1/providers/nope/ttls/bars", json={"ttl_seconds": 1}), 404)
    _problem(api.put("/api/v1/providers/synthetic/ttls/quotes", json={"ttl_seconds": 1}), 404)
    _problem(api.delete("/api/v1/providers/files/ttls/instruments"), 404)
    _problem(api.put("/api/v1/providers/sample/ttls/bars", json={"ttl_seconds": -1}), 400)
    _problem(api.put("/api/v1/providers/sample/ttls/bars", json={"ttl": 1}), 400)


def test_settings_ttls_show_as_their_source(
    settings: Settings, serve_api: ServeApi, api_keys: ApiKeys
) -> None:
    configured = dataclasses.replace(settings, provider_ttls=("sample:bars=120",))
    with serve_api(create_app(configured)) as url:
        ttls = httpx.get(
            f"{url}/api/v1/providers/ttls", headers=_as(api_keys.read), params={"limit": 1000}
        ).json()["items"]

    sample = next(t for t in ttls if (t["provider"], t["dataset"]) == ("sample", "bars"))
    assert sample["ttl_seconds"] == 120 and sample["source"] == "settings"


def test_watchlist_job_loads_stored_symbols_from_their_provider(
    settings: Settings, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=40)
    ingest("sample", "VIX")
    assert settings.database_url is not None
    context = JobContext(0, JobEnv(settings, settings.database_url, settings.redis_url))

    summary = ingest_watchlist(
        context, WatchlistParams(symbols=["VIX", "SYN0001", "NEW", "SYN0000", "VIX"])
    )

    assert summary["watchlist"] == ["VIX", "SYN0001", "NEW", "SYN0000"]
    assert [(r["provider"], r["symbols"]) for r in summary["runs"]] == [
        ("sample", ["VIX"]),
        ("synthetic", ["SYN0000", "SYN0001"]),
    ]
    assert summary["skipped"] == ["NEW"]
    assert summary["notes"] and "NEW" in summary["notes"][0]
    assert summary["failed"] == {}
    # VIX has nothing new; the synthetic series run on to their default 2520 days
    assert summary["rows_fetched"] >= 2 * (2520 - 40)
    assert summary["rows_upserted"] >= 2 * (2520 - 40)
    assert set(summary["provider_calls"]) == {"sample", "synthetic"}
