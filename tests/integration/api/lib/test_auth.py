"""API keys on `/api/v1`: 401 without one, 403 for a narrower scope, 429 over the limit."""

from __future__ import annotations

import dataclasses

import httpx
import psycopg

from api.server.app import create_app
from engine.io.api_keys import revoke_api_key
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return dict(body)


def test_no_key_is_401_problem_details(http: httpx.Client) -> None:
    body = _problem(http.get("/api/v1/jobs"), 401)

    assert "Authorization: Bearer" in str(body["detail"])


def test_unknown_and_malformed_keys_are_401(http: httpx.Client) -> None:
    for headers in (
        {"Authorization": "Bearer rl_00000000_nope"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        response = http.get("/api/v1/jobs", headers=headers)
        _problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_both_header_forms_are_accepted(http: httpx.Client, api_keys: ApiKeys) -> None:
    assert http.get("/api/v1/jobs", headers={"X-API-Key": api_keys.read}).status_code == 200
    bearer = {"Authorization": f"Bearer {api_keys.read}"}
    assert http.get("/api/v1/jobs", headers=bearer).status_code == 200


def test_read_key_on_write_route_is_403(http: httpx.Client, api_keys: ApiKeys) -> None:
    response = http.post(
        "/api/v1/jobs/schedules/housekeeping/run", headers={"X-API-Key": api_keys.read}
    )

    body = _problem(response, 403)
    assert "'write' scope" in str(body["detail"])


def test_revoked_key_stops_working(
    settings: Settings, serve_api: ServeApi, api_keys: ApiKeys
) -> None:
    no_trust = dataclasses.replace(settings, api_key_cache_seconds=0.0)
    with serve_api(create_app(no_trust)) as url:
        headers = {"X-API-Key": api_keys.read}
        assert httpx.get(f"{url}/api/v1/jobs", headers=headers).status_code == 200
        assert settings.database_url is not None
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            revoke_api_key(conn, "test-read")
        _problem(httpx.get(f"{url}/api/v1/jobs", headers=headers), 401)


def test_over_the_rate_limit_is_429_with_retry_after(
    settings: Settings, serve_api: ServeApi, api_keys: ApiKeys
) -> None:
    limited = dataclasses.replace(settings, rate_limit_per_minute=3)
    with serve_api(create_app(limited)) as url:
        headers = {"X-API-Key": api_keys.read}
        statuses = [httpx.get(f"{url}/api/v1/jobs", headers=headers).status_code for _ in range(3)]
        over = httpx.get(f"{url}/api/v1/jobs", headers=headers)
        # another key has its own budget
        other = httpx.get(f"{url}/api/v1/jobs", headers={"X-API-Key": api_keys.write})

    assert statuses == [200, 200, 200]
    _problem(over, 429)
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["ratelimit-remaining"] == "0"
    assert other.status_code == 200


def test_open_routes_need_no_key(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    assert http.get("/ready").status_code == 200
    assert http.get("/schema/openapi.json").status_code == 200
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert "regimelab_http_request_duration_seconds" in metrics.text


def test_request_ids_are_echoed_or_minted(http: httpx.Client) -> None:
    echoed = http.get("/health", headers={"X-Request-ID": "abc-123"})
    minted = http.get("/health")

    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(minted.headers["x-request-id"]) == 32


def test_oversized_body_is_413(http: httpx.Client, api_keys: ApiKeys) -> None:
    response = http.post(
        "/api/v1/jobs/schedules/housekeeping/run",
        headers={"X-API-Key": api_keys.admin, "Content-Type": "application/json"},
        content=b"{" + b" " * 2_000_000 + b"}",
    )

    _problem(response, 413)
