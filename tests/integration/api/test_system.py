from __future__ import annotations

import httpx

from api.server.app import create_app
from engine.settings import Settings


def test_health_reports_database_and_cache(http: httpx.Client) -> None:
    response = http.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["cache"]["status"] == "ok"
    assert body["database"]["latency_ms"] >= 0
    assert body["version"]


def test_openapi_schema_is_served(http: httpx.Client) -> None:
    response = http.get("/schema/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "RegimeLab API"
    operation = spec["paths"]["/health"]["get"]
    assert operation["operationId"] == "getHealth"


def test_unknown_route_is_problem_details(http: httpx.Client) -> None:
    response = http.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_health_degrades_when_redis_is_unreachable(settings: Settings, serve_api) -> None:  # type: ignore[no-untyped-def]
    """A dead cache is reported, not a crash: the route still answers 200."""
    app = create_app(settings, redis_url="redis://127.0.0.1:1/0")
    with serve_api(app) as url:
        response = httpx.get(f"{url}/health", timeout=10)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["status"] == "ok"
    assert body["cache"]["status"] == "error"
    assert body["cache"]["detail"]
