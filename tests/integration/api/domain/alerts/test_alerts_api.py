"""Alert routes over real HTTP: rules (CRUD, validation naming the field, test sends),
backfills over the sample S&P 500, the evaluate job recording each event once, events and
their deliveries, and scopes."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from api.domain.ingest.jobs import ingest_watchlist
from api.domain.ingest.schemas import WatchlistParams
from api.lib.jobs import JobContext, JobEnv
from api.server.app import create_app
from engine.alerts import from_row
from engine.alerts.runs import evaluate_alerts
from engine.ingest.service import build_request, run_ingest
from engine.io.alert_delivery import SIGNATURE_HEADER, verify_signature
from engine.io.alerts import get_rule
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest

PROBLEM = "application/problem+json"
BELOW_1000: dict[str, Any] = {
    "kind": "threshold",
    "feature": "close",
    "op": "crosses_below",
    "value": 1000,
    "hysteresis": 50,
}


def _rule(name: str = "spx-below-1000", **fields: Any) -> dict[str, Any]:
    return {"name": name, "condition": BELOW_1000, "symbols": ["SPX"], **fields}


def _fields(response: httpx.Response, status: int = 400) -> list[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    return [error.get("field") for error in body.get("errors", [])]


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait_for_job(api: httpx.Client, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _ingest_sample(settings: Settings, end: str | None = None) -> None:
    assert settings.database_url is not None
    run_ingest(
        settings,
        build_request(
            "sample",
            "SPX",
            end=None if end is None else datetime.fromisoformat(end).replace(tzinfo=UTC),
        ),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )


@pytest.fixture
def private_settings(settings: Settings) -> Settings:
    """Settings that let webhooks reach the loopback test receiver."""
    return dataclasses.replace(settings, alert_allow_private_targets=True)


@pytest.fixture
def private_api(
    private_settings: Settings, api_keys: ApiKeys, serve_api: ServeApi
) -> Iterator[httpx.Client]:
    """An admin client of an API whose settings allow private webhook targets."""
    with (
        serve_api(create_app(private_settings)) as url,
        httpx.Client(base_url=url, timeout=30, headers=_as(api_keys.admin)) as client,
    ):
        yield client


# ---------------------------------------------------------------- rules


def test_rule_crud_redacts_secrets_and_answers_404_and_409(
    api: httpx.Client, settings: Settings, api_keys: ApiKeys
) -> None:
    webhook = {"type": "webhook", "url": "https://93.184.215.14/hook", "secret": "s3cret"}
    created = api.post(
        "/api/v1/alerts/rules",
        json=_rule(channels=[webhook, {"type": "sse"}], cooldown_seconds=3600, severity="critical"),
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    rule_id = rule["id"]
    assert rule["name"] == "spx-below-1000" and rule["severity"] == "critical"
    assert rule["condition"] == {**BELOW_1000, "value": 1000.0, "confirm_bars": 1}
    assert rule["channels"][0] == {**webhook, "secret": "********"}
    assert rule["created_at"] and rule["updated_at"]

    listed = api.get("/api/v1/alerts/rules").json()
    assert listed["total"] == 1 and listed["items"][0] == rule
    assert api.get("/api/v1/alerts/rules", params={"enabled": "false"}).json()["total"] == 0
    assert api.get(f"/api/v1/alerts/rules/{rule_id}").json() == rule

    # PUT replaces the rule; the placeholder keeps the stored secret
    changed = {**rule, "cooldown_seconds": 60, "enabled": False}
    for key in ("id", "created_at", "updated_at"):
        changed.pop(key)
    replaced = api.put(f"/api/v1/alerts/rules/{rule_id}", json=changed)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["cooldown_seconds"] == 60 and replaced.json()["enabled"] is False
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        row = get_rule(conn, rule_id)
    assert row is not None and from_row(row).channels[0].secret == "s3cret"  # type: ignore[union-attr]
    moved = {**changed, "channels": [{**webhook, "url": "https://93.184.215.15/x"}]}
    moved["channels"][0]["secret"] = "********"
    assert _fields(api.put(f"/api/v1/alerts/rules/{rule_id}", json=moved)) == ["channels[0].secret"]

    # names are unique
    assert _fields(api.post("/api/v1/alerts/rules", json=_rule()), 409) == []
    other = api.post("/api/v1/alerts/rules", json=_rule("other")).json()
    taken = {**changed, "channels": []}
    assert _fields(api.put(f"/api/v1/alerts/rules/{other['id']}", json=taken), 409) == []

    # scopes: reads need read, writes need write
    read = _as(api_keys.read)
    assert api.get("/api/v1/alerts/rules", headers=read).status_code == 200
    for method, path, body in (
        ("POST", "/api/v1/alerts/rules", _rule("x")),
        ("PUT", f"/api/v1/alerts/rules/{rule_id}", changed),
        ("DELETE", f"/api/v1/alerts/rules/{rule_id}", None),
        ("POST", f"/api/v1/alerts/rules/{rule_id}/test", None),
        ("POST", "/api/v1/alerts/evaluate", None),
    ):
        denied = api.request(method, path, json=body, headers=read)
        assert denied.status_code == 403, (method, path, denied.text)
    write = _as(api_keys.write)
    assert api.post("/api/v1/alerts/rules", json=_rule("by-writer"), headers=write).is_success

    assert api.delete(f"/api/v1/alerts/rules/{rule_id}").status_code == 204
    for method in ("GET", "PUT", "DELETE"):
        gone = api.request(method, f"/api/v1/alerts/rules/{rule_id}", json=changed)
        assert gone.status_code == 404, (method, gone.text)
    assert api.post(f"/api/v1/alerts/rules/{rule_id}/test").status_code == 404
    assert api.get("/api/v1/alerts/rules/0").status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"condition": {**BELOW_1000, "feature": "moon_phase"}}, "condition.feature"),
        ({"condition": {**BELOW_1000, "value": "high"}}, "condition.value"),
        ({"channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]}, "channels[0].url"),
        (
            {"channels": [{"type": "webhook", "url": "http://169.254.169.254/latest/meta-data"}]},
            "channels[0].url",
        ),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
        ({"condition": {"kind": "threshold", "op": "above", "value": 1}}, "condition.feature"),
        ({"condition": {"kind": "sunspots"}}, "condition.kind"),
        ({"channels": [{"type": "slack", "url": "ftp://example.com/x"}]}, "channels[0].url"),
        (
            {"active_hours": {"start": "09:30:00", "end": "16:00:00", "timezone": "Mars/Base"}},
            "active_hours.timezone",
        ),
        ({"symbols": [], "watchlist": False}, "symbols"),
        ({"colour": "red"}, "colour"),
        ({"cooldown_seconds": 2**40}, "cooldown_seconds"),
        ({"symbols": ["SPX", "A\x00B"]}, "symbols[1]"),
        ({"description": "nul\x00"}, "description"),
    ],
)
def test_invalid_rules_are_400_naming_the_field(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/alerts/rules", json={**_rule(), **change})

    assert _fields(response) == [field]
    assert api.get("/api/v1/alerts/rules").json()["total"] == 0


def test_rules_take_the_shapes_the_cli_takes(api: httpx.Client) -> None:
    hours = {"start": "09:30", "end": "16:00", "days": [0, 1, 2, 3, 4], "timezone": "UTC"}
    created = api.post("/api/v1/alerts/rules", json=_rule(active_hours=hours))
    assert created.status_code == 201, created.text
    assert created.json()["active_hours"] == {**hours, "start": "09:30:00", "end": "16:00:00"}
    for body in ([_rule()], "spx", None):
        response = api.post("/api/v1/alerts/rules", json=body)
        assert response.status_code == 400, response.text
    not_json = api.post(
        "/api/v1/alerts/rules", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400, not_json.text
    assert api.post("/api/v1/alerts/backfill", json={"rule": []}).status_code == 400


def test_private_targets_pass_when_allowed_but_metadata_never(private_api: httpx.Client) -> None:
    local = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert private_api.post("/api/v1/alerts/rules", json=_rule(channels=[local])).is_success
    metadata = {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data"}
    response = private_api.post("/api/v1/alerts/rules", json=_rule("m", channels=[metadata]))
    assert _fields(response) == ["channels[0].url"]


# ---------------------------------------------------------------- backfill


def test_backfill_over_the_sample_sp500_returns_firing_dates(
    api: httpx.Client, ingest: Ingest
) -> None:
    ingest("sample", "SPX")
    window = {"start": "2008-01-01", "end": "2017-12-31"}

    below = api.post("/api/v1/alerts/backfill", json={"rule": _rule(), **window})

    assert below.status_code == 200, below.text
    result = below.json()
    # Lehman autumn: the S&P 500 lost 1000 on 7 October 2008
    assert result["count"] == 1 and not result["truncated"]
    assert result["symbols"] == ["SPX"] and result["start"] == "2008-01-01"
    firing = result["firings"][0]
    assert firing["ts"].startswith("2008-10-07") and firing["symbol"] == "SPX"
    assert firing["message"].startswith("SPX close crossed below 1000")
    assert firing["payload"]["feature"] == "close"

    correction = {"kind": "drawdown", "threshold_pct": 10, "lookback_bars": 252}
    stored = api.post("/api/v1/alerts/rules", json=_rule("correction", condition=correction))
    by_id = api.post(
        "/api/v1/alerts/backfill", json={"rule_id": stored.json()["id"], **window}
    ).json()
    assert [f["ts"][:10] for f in by_id["firings"]] == ["2010-05-20", "2011-08-04", "2015-08-24"]
    assert by_id["rule"] == "correction" and by_id["count"] == 3

    # an unsaved rule's channels do not matter to when it fires
    private = _rule(channels=[{"type": "webhook", "url": "http://127.0.0.1/x"}])
    assert api.post("/api/v1/alerts/backfill", json={"rule": private, **window}).is_success


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rule": _rule(), "rule_id": 1}, "rule"),
        ({}, "rule"),
        ({"rule": {**_rule(), "condition": {**BELOW_1000, "value": "x"}}}, "rule.condition.value"),
        (
            {"rule": {**_rule(), "condition": {**BELOW_1000, "feature": "nope"}}},
            "rule.condition.feature",
        ),
        ({"rule": _rule(), "start": "1950-01-01", "end": "2000-01-01"}, "start"),
        ({"rule": _rule(), "start": "2001-01-01", "end": "2000-01-01"}, "start"),
        ({"rule": {**_rule(), "name": "x\x00"}}, "rule.name"),
    ],
)
def test_bad_backfills_are_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    assert _fields(api.post("/api/v1/alerts/backfill", json=body)) == [field]


def test_backfill_windows_at_the_ends_of_the_calendar(api: httpx.Client) -> None:
    for window in ({"end": "0010-06-30"}, {"start": "9999-01-01", "end": "9999-12-31"}):
        response = api.post("/api/v1/alerts/backfill", json={"rule": _rule(), **window})
        assert response.status_code == 200, response.text
        assert response.json()["count"] == 0


def test_backfill_of_an_unknown_rule_is_404(api: httpx.Client, api_keys: ApiKeys) -> None:
    response = api.post(
        "/api/v1/alerts/backfill", json={"rule_id": 4242}, headers=_as(api_keys.read)
    )
    assert response.status_code == 404


# ---------------------------------------------------------------- evaluation and events


def _receiver(httpserver: HTTPServer, status: int = 200) -> list[Request]:
    received: list[Request] = []

    def handle(request: Request) -> Response:
        received.append(request)
        return Response("ok" if status < 400 else "broken", status=status)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handle)
    return received


def test_evaluate_job_records_each_event_once_and_delivers_it(
    private_api: httpx.Client, private_settings: Settings, httpserver: HTTPServer
) -> None:
    received = _receiver(httpserver)
    _ingest_sample(private_settings, end="2008-09-30")
    hook = {"type": "webhook", "url": httpserver.url_for("/hook"), "secret": "hook-secret"}
    rule = private_api.post("/api/v1/alerts/rules", json=_rule(channels=[hook, {"type": "sse"}]))
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]

    def run() -> dict[str, Any]:
        accepted = private_api.post("/api/v1/alerts/evaluate")
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["job"] == "alerts.evaluate"
        job = _wait_for_job(private_api, accepted.json()["job_id"])
        assert job["status"] == "succeeded", job
        return dict(job["result"])

    # a rule judges the bars stored after it was saved: none yet
    first = run()
    assert first["rules"] == 1 and first["events"] == 0
    # October arrives: the crossing of 7 October fires once, however often we look
    _ingest_sample(private_settings, end="2008-10-31")
    second = run()
    assert second["events"] == 1 and second["published"] == 1
    assert run()["events"] == 0
    assert private_settings.database_url is not None
    again = evaluate_alerts(
        private_settings, private_settings.database_url, private_settings.redis_url
    )
    assert again.events == []

    events = private_api.get("/api/v1/alerts/events").json()
    assert events["total"] == 1
    event = events["items"][0]
    assert event["id"] == second["event_ids"][0]
    assert event["rule_id"] == rule_id and event["rule"] == "spx-below-1000"
    assert event["ts"].startswith("2008-10-07") and event["symbol"] == "SPX"
    assert event["dedupe_key"] == f"{rule_id}:SPX:2008-10-07T00:00:00+00:00"
    assert event["severity"] == "warning" and event["payload"]["value"] < 1000

    # the job (or the API's delivery loop) sent the signed webhook exactly once
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == 1
    body = received[0].get_data()
    assert json.loads(body)["event_id"] == event["id"]
    assert verify_signature("hook-secret", received[0].headers[SIGNATURE_HEADER], body)
    detail = private_api.get(f"/api/v1/alerts/events/{event['id']}").json()
    assert [(d["channel"], d["status"], d["attempts"]) for d in detail["deliveries"]] == [
        ("webhook", "sent", 1)
    ]
    assert detail["deliveries"][0]["target"] == hook["url"]

    # filters
    def total(**params: Any) -> int:
        return int(private_api.get("/api/v1/alerts/events", params=params).json()["total"])

    assert total(rule_id=rule_id) == total(symbol="SPX") == total(since="2008-10-01") == 1
    assert total(rule_id=rule_id + 1) == total(symbol="IXIC") == total(since="2008-10-08") == 0
    assert total(severity="warning") == 1 and total(severity="critical") == 0
    assert private_api.get("/api/v1/alerts/events/999999").status_code == 404


def test_the_api_sends_due_deliveries_in_the_background(
    private_api: httpx.Client, private_settings: Settings, httpserver: HTTPServer
) -> None:
    received = _receiver(httpserver)
    _ingest_sample(private_settings, end="2008-09-30")
    hook = {"type": "webhook", "url": httpserver.url_for("/hook")}
    private_api.post("/api/v1/alerts/rules", json=_rule(channels=[hook]))
    _ingest_sample(private_settings, end="2008-10-31")
    assert private_settings.database_url is not None

    outcome = evaluate_alerts(
        private_settings, private_settings.database_url, None, deliver=False
    )  # records the event and its outbox row, sends nothing, publishes nothing

    assert len(outcome.events) == 1 and outcome.delivered is None and outcome.published == 0
    deadline = time.monotonic() + 5  # the lifespan's loop runs a round every second
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == 1
    assert json.loads(received[0].get_data())["event_id"] == outcome.events[0]["id"]


def test_evaluate_names_rules_that_exist_and_are_enabled(api: httpx.Client) -> None:
    api.post("/api/v1/alerts/rules", json=_rule("off", enabled=False))

    assert api.post("/api/v1/alerts/evaluate", json={"rules": ["nope"]}).status_code == 404
    assert _fields(api.post("/api/v1/alerts/evaluate", json={"rules": ["off"]})) == ["rules[0]"]
    assert _fields(api.post("/api/v1/alerts/evaluate", json={"rule": "x"})) == ["rule"]
    assert _fields(api.post("/api/v1/alerts/evaluate", json={"rules": ["a\x00"]})) == ["rules[0]"]


def test_watchlist_ingest_evaluates_the_new_bars(settings: Settings, api: httpx.Client) -> None:
    watching = dataclasses.replace(settings, watchlist=("SPX",))
    _ingest_sample(watching, end="2018-06-29")
    correction = {"kind": "drawdown", "threshold_pct": 10, "lookback_bars": 63}
    api.post("/api/v1/alerts/rules", json=_rule("quarter-drawdown", condition=correction))
    assert watching.database_url is not None
    assert evaluate_alerts(watching, watching.database_url, watching.redis_url).events == []

    context = JobContext(0, JobEnv(watching, watching.database_url, watching.redis_url))
    summary = ingest_watchlist(context, WatchlistParams())

    assert summary["rows_upserted"] > 100
    assert summary["alerts"]["events"] == 1
    events = api.get("/api/v1/alerts/events").json()["items"]
    assert [e["ts"][:10] for e in events] == ["2018-11-23"]
    assert events[0]["message"].startswith("SPX is 10.")


# ---------------------------------------------------------------- test notifications


def test_test_notifications_report_each_channel(
    private_api: httpx.Client, httpserver: HTTPServer
) -> None:
    received = _receiver(httpserver)
    good = {"type": "webhook", "url": httpserver.url_for("/hook")}
    broken = {"type": "slack", "url": httpserver.url_for("/missing")}
    rule = private_api.post(
        "/api/v1/alerts/rules", json=_rule(channels=[good, broken, {"type": "sse"}])
    ).json()

    response = private_api.post(f"/api/v1/alerts/rules/{rule['id']}/test")

    assert response.status_code == 200, response.text
    outcomes = response.json()["outcomes"]
    assert [(o["channel"], o["ok"]) for o in outcomes] == [
        ("webhook", True),
        ("slack", False),
        ("sse", True),
    ]
    assert "500" in outcomes[1]["detail"]
    assert len(received) == 1
    sent = json.loads(received[0].get_data())
    assert sent["message"].startswith("[TEST]") and sent["payload"]["test"] is True
    # nothing was recorded: a test is not an event
    assert private_api.get("/api/v1/alerts/events").json()["total"] == 0

    silent = private_api.post("/api/v1/alerts/rules", json=_rule("silent")).json()
    assert _fields(private_api.post(f"/api/v1/alerts/rules/{silent['id']}/test")) == ["channels"]
