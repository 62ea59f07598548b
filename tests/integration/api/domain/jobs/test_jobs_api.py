"""The job routes over real HTTP: history, status, run-now, schedules."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from api.lib.jobs import load_jobs
from api.lib.pagination import MAX_OFFSET
from api.server.app import create_app
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def _add_runs(database_url: str, *runs: tuple[str, str, str]) -> list[int]:
    """Insert finished runs (job, status, trigger); their ids in insertion order."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [
            int(
                conn.execute(
                    "INSERT INTO job_runs (job_name, status, trigger, params, result, "
                    "started_at, finished_at) VALUES (%s, %s, %s, %s, %s, now(), now()) "
                    "RETURNING id",
                    (job, status, trigger, Jsonb({"n": 1}), Jsonb({"ok": True})),
                ).fetchone()[0]  # type: ignore[index]
            )
            for job, status, trigger in runs
        ]


def _wait_finished(api: httpx.Client, job_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] in {"succeeded", "failed"}:
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_history_is_newest_first_paginated_and_filtered(
    api: httpx.Client, settings: Settings
) -> None:
    assert settings.database_url is not None
    ids = _add_runs(
        settings.database_url,
        ("housekeeping", "succeeded", "schedule"),
        ("ingest", "failed", "api"),
        ("housekeeping", "succeeded", "api"),
        ("backtest", "succeeded", "cli"),
        ("housekeeping", "failed", "schedule"),
    )

    first = api.get("/api/v1/jobs", params={"limit": 2}).json()
    rest = api.get("/api/v1/jobs", params={"limit": 2, "offset": 4}).json()
    beyond = api.get("/api/v1/jobs", params={"offset": MAX_OFFSET}).json()

    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [run["id"] for run in first["items"]] == ids[::-1][:2]
    assert [run["id"] for run in rest["items"]] == [ids[0]]
    assert beyond["items"] == [] and beyond["total"] == 5

    def ids_for(**filters: str) -> list[int]:
        return [run["id"] for run in api.get("/api/v1/jobs", params=filters).json()["items"]]

    assert ids_for(job="housekeeping") == [ids[4], ids[2], ids[0]]
    assert ids_for(status="failed") == [ids[4], ids[1]]
    assert ids_for(trigger="schedule", status="succeeded") == [ids[0]]
    assert ids_for(job="no-such-job") == []
    _problem(api.get("/api/v1/jobs", params={"status": "done"}), 400)
    _problem(api.get("/api/v1/jobs", params={"job": "bad\x00name"}), 400)
    _problem(api.get("/api/v1/jobs", params={"limit": 0}), 400)
    _problem(api.get("/api/v1/jobs", params={"offset": 10**30}), 400)


def test_one_run_or_404(api: httpx.Client, settings: Settings) -> None:
    assert settings.database_url is not None
    (run_id,) = _add_runs(settings.database_url, ("ingest", "succeeded", "api"))

    run = api.get(f"/api/v1/jobs/{run_id}").json()

    assert run["job"] == "ingest" and run["status"] == "succeeded" and run["progress"] == 0
    assert run["params"] == {"n": 1} and run["result"] == {"ok": True} and run["error"] is None
    assert run["created_at"] and run["started_at"] and run["finished_at"]
    for missing in (run_id + 1, 0, 2**63, 10**30):
        _problem(api.get(f"/api/v1/jobs/{missing}"), 404)
    assert api.get("/api/v1/jobs/nope").status_code in {400, 404}


def test_run_now_is_accepted_then_succeeds_with_a_result(api: httpx.Client) -> None:
    response = api.post("/api/v1/jobs/schedules/housekeeping/run", json={"stuck_after_hours": 12})

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["job"] == "housekeeping" and accepted["status"] == "queued"
    assert response.headers["location"] == accepted["status_url"]
    run = _wait_finished(api, accepted["job_id"])
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "api"
    assert run["params"]["stuck_after_hours"] == 12
    assert run["progress"] == 1
    assert run["result"] == {
        "job_runs_deleted": 0,
        "job_runs_marked_failed": 0,
        "orphaned_job_runs": [],  # the run itself holds its lease
        "retention_days": 30,
    }
    history = api.get("/api/v1/jobs", params={"job": "housekeeping"}).json()
    assert [item["id"] for item in history["items"]] == [accepted["job_id"]]


def test_run_now_checks_its_params(api: httpx.Client, api_keys: ApiKeys) -> None:
    url = "/api/v1/jobs/schedules/housekeeping/run"

    wrong_type = _problem(api.post(url, json={"stuck_after_hours": "soon"}), 400)
    unknown = _problem(api.post(url, json={"vacuum": True}), 400)
    _problem(api.post(url, json=[1, 2]), 400)
    _problem(api.post(url, json={"stuck_after_hours": -1}), 400)
    _problem(api.post(url, json={"vacuum\x00": 1}), 400)
    _problem(api.post("/api/v1/jobs/schedules/no-such-job/run"), 404)
    _problem(api.post(url, headers={"Authorization": f"Bearer {api_keys.read}"}), 403)

    assert wrong_type["errors"][0]["field"] == "params.stuck_after_hours"
    assert "unknown field" in unknown["detail"]
    assert api.get("/api/v1/jobs").json()["total"] == 0  # nothing was queued


def test_schedules_list_every_job_and_take_table_overrides(
    api: httpx.Client, api_keys: ApiKeys
) -> None:
    def housekeeping() -> dict[str, Any]:
        schedules = api.get("/api/v1/jobs/schedules").json()
        return next(item for item in schedules if item["name"] == "housekeeping")

    listed = housekeeping()
    assert listed["trigger"] == "every 6h" and listed["enabled"] is True
    assert listed["source"] == "default"
    assert listed["next_run_at"] is None  # this replica does not lead (scheduler off)
    assert listed["description"].startswith("Prune old job runs")

    url = "/api/v1/jobs/schedules/housekeeping"
    updated = api.put(url, json={"trigger": " Every  1H ", "params": {"stuck_after_hours": 2}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["trigger"] == "every 1h" and updated.json()["source"] == "table"
    switched_off = api.put(url, json={"enabled": False}).json()
    assert switched_off["trigger"] == "every 1h" and switched_off["enabled"] is False
    assert switched_off["params"] == {"stuck_after_hours": 2}
    assert housekeeping() == switched_off

    bad_trigger = _problem(api.put(url, json={"trigger": "every banana"}), 400)
    assert bad_trigger["errors"][0]["field"] == "trigger"
    assert "every banana" in bad_trigger["detail"]
    _problem(api.put(url, json={"trigger": "0 22 * * 8"}), 400)
    _problem(api.put(url, json={"params": {"stuck_after_hours": 0}}), 400)
    _problem(api.put(url, json={"enable": True}), 400)
    _problem(api.put("/api/v1/jobs/schedules/no-such-job", json={"enabled": True}), 404)
    _problem(
        api.put(url, json={"enabled": True}, headers={"Authorization": f"Bearer {api_keys.write}"}),
        403,
    )
    assert housekeeping() == switched_off  # none of those changed anything


def test_a_leading_replica_shows_next_runs(
    settings: Settings, serve_api: ServeApi, api_keys: ApiKeys
) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        # only housekeeping, and not before the test ends
        for name in load_jobs():
            trigger = "0 0 1 1 *" if name == "housekeeping" else "off"
            conn.execute(
                "INSERT INTO job_schedules (name, trigger) VALUES (%s, %s)", (name, trigger)
            )
    leading = dataclasses.replace(settings, scheduler=True, leader_check_seconds=0.2)
    headers = {"X-API-Key": api_keys.read}
    with serve_api(create_app(leading)) as url:
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/ready").json()["scheduler"] != "leader":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        schedules = httpx.get(f"{url}/api/v1/jobs/schedules", headers=headers).json()

    housekeeping = next(item for item in schedules if item["name"] == "housekeeping")
    assert housekeeping["next_run_at"].endswith("-01-01T00:00:00Z")
    assert all(item["next_run_at"] is None for item in schedules if not item["enabled"])
