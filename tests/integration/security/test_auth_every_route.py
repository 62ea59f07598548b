"""Every operation of the served OpenAPI document is guarded, except an explicit allowlist.

The operations come from `/schema/openapi.json`, so a route added without a guard fails
here. For each one: no key, a malformed key, an unknown key and a revoked key are 401
problems; a read key is 403 where writing is needed, a write key 403 where admin is; and
none of those refused requests changed a row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Final

import httpx
import psycopg
import pytest

from api.server.app import create_app
from engine.io.api_keys import create_api_key, revoke_api_key, server_secret
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi
from tests.integration.security.openapi_ops import Operation, fetch_spec, operations

PROBLEM: Final = "application/problem+json"

# Deliberately open: liveness, readiness, metrics and the docs. Nothing else.
PUBLIC: Final = frozenset(
    {
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
    }
)
PUBLIC_PREFIXES: Final = ("/schema",)  # the OpenAPI document and its renderers

# Operations that change nothing though they are not GETs (a backfill only computes).
READ_ONLY_NON_GET: Final = frozenset({("post", "/api/v1/alerts/backfill")})
# Configuration: provider cache TTLs and job schedules.
ADMIN: Final = frozenset(
    {
        ("put", "/api/v1/providers/{provider}/ttls/{dataset}"),
        ("delete", "/api/v1/providers/{provider}/ttls/{dataset}"),
        ("put", "/api/v1/jobs/schedules/{name}"),
    }
)

TABLES_THAT_MUST_NOT_CHANGE: Final = (
    "instruments",
    "provider_ttls",
    "strategies",
    "alert_rules",
    "job_runs",
    "job_schedules",
    "research_notes",
    "regime_runs",
    "backtest_runs",
    "market_states",
)


def _public(op: Operation) -> bool:
    return (op.method, op.path) in PUBLIC or op.path.startswith(PUBLIC_PREFIXES)


def _needed_scope(op: Operation) -> str:
    if (op.method, op.path) in ADMIN:
        return "admin"
    if op.method == "get" or (op.method, op.path) in READ_ONLY_NON_GET:
        return "read"
    return "write"


@dataclasses.dataclass(frozen=True)
class Guarded:
    url: str
    keys: ApiKeys
    revoked: str
    spec: dict[str, Any]


@pytest.fixture
def guarded(settings: Settings, api_keys: ApiKeys, serve_api: ServeApi) -> Iterator[Guarded]:
    """The API (no key cache, no rate limit) with a read, write, admin and revoked key."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _, revoked = create_api_key(conn, "revoked", "admin", server_secret(settings))
        revoke_api_key(conn, "revoked")
    strict = dataclasses.replace(settings, api_key_cache_seconds=0, rate_limit_per_minute=0)
    with serve_api(create_app(strict)) as url:
        yield Guarded(url, api_keys, revoked, fetch_spec(url))


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # type: ignore[index]
            for table in TABLES_THAT_MUST_NOT_CHANGE
        }


def _call(client: httpx.Client, op: Operation, headers: dict[str, str]) -> httpx.Response:
    body = {} if op.method in ("post", "put", "patch") else None
    return client.request(op.method.upper(), op.url(), json=body, headers=headers)


def _problem(response: httpx.Response, status: int) -> str | None:
    """Why `response` is not the `status` problem it should be (None if it is)."""
    if response.status_code != status:
        return f"status {response.status_code}, expected {status}: {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith(PROBLEM):
        return f"content-type {response.headers.get('content-type')!r}"
    body = response.json()
    if body.get("status") != status or not body.get("detail"):
        return f"body {body!r}"
    if status == 401 and "bearer" not in response.headers.get("www-authenticate", "").lower():
        return "no WWW-Authenticate challenge"
    return None


def test_the_allowlist_names_real_public_operations(guarded: Guarded) -> None:
    declared = {(op.method, op.path) for op in operations(guarded.spec)}
    assert PUBLIC - {("get", "/metrics")} <= declared  # /metrics is left out of the document
    assert declared >= ADMIN | READ_ONLY_NON_GET, "an allowlisted operation no longer exists"
    response = httpx.get(f"{guarded.url}/metrics", timeout=10)
    assert response.status_code == 200


def test_every_non_public_operation_declares_the_api_key_schemes(guarded: Guarded) -> None:
    schemes = guarded.spec["components"]["securitySchemes"]
    assert {"BearerAuth", "ApiKeyHeader"} <= set(schemes)
    undeclared = [
        op.id
        for op in operations(guarded.spec)
        if not _public(op)
        and not {"BearerAuth", "ApiKeyHeader"}
        <= {k for s in op.spec.get("security", []) for k in s}
    ]
    assert undeclared == []
    guarded_ops = [op for op in operations(guarded.spec) if not _public(op)]
    assert len(guarded_ops) >= 50  # the document really lists the API


def test_every_non_public_operation_refuses_missing_bad_and_revoked_keys(
    guarded: Guarded, database_url: str
) -> None:
    before = _counts(database_url)
    credentials = {
        "no key": {},
        "not a bearer scheme": {"Authorization": f"Basic {guarded.keys.admin}"},
        "empty bearer": {"Authorization": "Bearer"},
        "malformed key": {"X-API-Key": "not-a-key"},
        "malformed bearer": {"Authorization": "Bearer rl_' OR 1=1 --"},
        "unknown key": {"Authorization": "Bearer rl_0123456789abcdef0123456789abcdef"},
        "oversized key": {"X-API-Key": "rl_" + "a" * 5000},
        "revoked key": {"Authorization": f"Bearer {guarded.revoked}"},
    }
    failures = []
    checked = 0
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        for op in operations(guarded.spec):
            if _public(op):
                continue
            for label, headers in credentials.items():
                why = _problem(_call(client, op, headers), 401)
                checked += 1
                if why:
                    failures.append(f"{op.id} with {label}: {why}")

    assert failures == []
    assert checked >= 50 * len(credentials)
    assert _counts(database_url) == before


def test_keys_without_the_needed_scope_are_403(guarded: Guarded, database_url: str) -> None:
    before = _counts(database_url)
    lower = {"write": ("read",), "admin": ("read", "write")}
    failures = []
    refused = 0
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        for op in operations(guarded.spec):
            if _public(op):
                continue
            for scope in lower.get(_needed_scope(op), ()):
                key = getattr(guarded.keys, scope)
                response = _call(client, op, {"Authorization": f"Bearer {key}"})
                refused += 1
                why = _problem(response, 403)
                if why:
                    failures.append(f"{op.id} with a {scope} key: {why}")
                elif _needed_scope(op) not in response.json()["detail"]:
                    failures.append(f"{op.id}: 403 detail does not name the scope")

    assert failures == []
    assert refused >= 20
    assert _counts(database_url) == before


def test_public_operations_answer_without_a_key(guarded: Guarded) -> None:
    for method, path in sorted(PUBLIC):
        response = httpx.request(method.upper(), f"{guarded.url}{path}", timeout=30)
        assert response.status_code in (200, 503), (path, response.status_code)
    assert httpx.get(f"{guarded.url}/schema/openapi.json", timeout=30).status_code == 200


def test_a_read_key_is_enough_for_every_read_operation_it_is_refused_nothing(
    guarded: Guarded,
) -> None:
    # the other side of the coin: scopes are not over-tightened (no 401/403 for read routes)
    wrong = []
    with httpx.Client(base_url=guarded.url, timeout=60) as client:
        for op in operations(guarded.spec):
            if _public(op) or _needed_scope(op) != "read" or op.path.endswith("/stream"):
                continue
            response = _call(client, op, {"X-API-Key": guarded.keys.read})
            if response.status_code in (401, 403):
                wrong.append(f"{op.id}: {response.status_code}")
    assert wrong == []
