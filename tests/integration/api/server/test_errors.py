"""Every error is RFC 9457 problem details, without internals; CORS only for known origins."""

from __future__ import annotations

import dataclasses

import httpx

from api.server.app import create_app
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi

PROBLEM = "application/problem+json"


def test_validation_errors_name_their_fields(api: httpx.Client) -> None:
    response = api.get("/api/v1/jobs", params={"limit": 0, "offset": -1})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == "Bad Request"
    assert body["status"] == 400
    assert "/api/v1/jobs" in body["detail"]
    fields = {error["field"] for error in body["errors"]}
    assert "limit" in fields
    assert all(error["message"] for error in body["errors"])


def test_malformed_json_body_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/jobs/schedules/housekeeping/run",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)


def test_method_not_allowed_is_problem_details(api: httpx.Client) -> None:
    response = api.delete("/api/v1/jobs")

    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"


def test_database_down_is_503_without_internals(
    settings: Settings, serve_api: ServeApi, api_keys: ApiKeys
) -> None:
    down = dataclasses.replace(settings, connect_timeout=1.0)
    app = create_app(down, database_url="postgresql://nobody@127.0.0.1:1/none")
    with serve_api(app) as url:
        response = httpx.get(f"{url}/api/v1/jobs", headers={"X-API-Key": api_keys.read}, timeout=30)

    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["retry-after"]
    text = response.text.lower()
    for leak in ("psycopg", "traceback", "select ", "127.0.0.1", "nobody"):
        assert leak not in text


def test_every_error_response_is_documented_as_a_problem(http: httpx.Client) -> None:
    spec = http.get("/schema/openapi.json").json()

    assert "Problem" in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert "application/problem+json" in response["content"], (path, status)
            if path.startswith("/api/"):
                assert {"401", "403", "429"} <= set(operation["responses"]), path
                assert operation["operationId"], path


def test_cors_allows_configured_origins_only(http: httpx.Client) -> None:
    def preflight(origin: str) -> httpx.Response:
        return http.options(
            "/api/v1/jobs",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    allowed = preflight("http://localhost:3000")
    denied = preflight("https://evil.example")

    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-origin" not in denied.headers
