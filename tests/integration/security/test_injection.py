"""SQL injection (and other hostile strings) in every string parameter of every GET
operation of the OpenAPI document, and in the string fields of the POST bodies that store
text, against seeded data with an admin key.

Never a 5xx, never a trace or SQL error text in a body, every table still there with its
rows, and no `pg_sleep` executed (each request answers well under the sleep it asks for).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import httpx
import psycopg

from tests.integration.security.openapi_ops import Operation, fetch_spec, operations

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest


SLEEP_SECONDS: Final = 5
PAYLOADS: Final = [
    "' OR 1=1 --",
    "'; DROP TABLE bars; --",
    '") OR ("1"="1',
    f"1; SELECT pg_sleep({SLEEP_SECONDS})",
    f"1' AND (SELECT 1 FROM pg_sleep({SLEEP_SECONDS}))::text = '1",
    "SYN0000\x00' OR '1'='1",
    "A" * 10_000,
    "régime ≥ 2 🙂 \u202e\ufeff",
    "%' UNION SELECT key_hash FROM api_keys --",
    "$$; DROP TABLE instruments; $$",
]
LEAKS: Final = (
    "traceback",
    "psycopg",
    "syntax error",
    "programmingerror",
    "line 1:",
    "pg_catalog",
    "unterminated",
    "sqlstate",
)
TABLES: Final = ("bars", "instruments", "api_keys", "alert_rules", "research_notes", "job_runs")


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
            for t in TABLES
        }


def _types(schema: dict[str, Any]) -> set[str]:
    """Every type a schema allows (through `type` lists and `oneOf`)."""
    declared = schema.get("type")
    found = set(declared) if isinstance(declared, list) else {declared}
    for option in schema.get("oneOf", []) + schema.get("anyOf", []):
        found |= _types(option)
    return {t for t in found if isinstance(t, str)}


def _string_parameters(op: Operation) -> list[dict[str, Any]]:
    found = []
    for parameter in op.spec.get("parameters", []):
        if parameter.get("in") not in ("query", "path"):
            continue
        if _types(parameter.get("schema", {})) & {"string", "array"}:
            found.append(parameter)
    return found


def _check(response: httpx.Response, elapsed: float, where: str) -> str | None:
    if response.status_code >= 500:
        return f"{where}: {response.status_code} {response.text[:200]}"
    text = response.text.lower()
    leaked = [marker for marker in LEAKS if marker in text]
    if leaked:
        return f"{where}: body mentions {leaked}: {response.text[:200]}"
    if elapsed >= SLEEP_SECONDS * 0.8:
        return f"{where}: took {elapsed:.1f} s (did pg_sleep run?)"
    return None


def _send(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, url, **kwargs)
    return response, time.monotonic() - started


def test_hostile_strings_in_every_get_parameter_are_harmless(
    api: httpx.Client, api_url: str, ingest: Ingest, database_url: str
) -> None:
    ingest("synthetic", "2", n_days=300)
    before = _counts(database_url)
    failures: list[str] = []
    sent = 0
    for op in operations(fetch_spec(api_url)):
        if op.method != "get" or not op.path.startswith("/api/") or op.path.endswith("/stream"):
            continue
        for parameter in _string_parameters(op):
            name = parameter["name"]
            for payload in PAYLOADS:
                if parameter["in"] == "path":
                    url, params = op.url(**{name: payload}), None
                    url = url.replace("\x00", "%00").replace("#", "%23").replace("?", "%3F")
                else:
                    url, params = op.url(), {name: payload}
                response, elapsed = _send(api, "GET", url, params=params)
                sent += 1
                why = _check(response, elapsed, f"{op.id} {name}={payload[:30]!r}")
                if why:
                    failures.append(why)

    assert failures == []
    assert sent >= 100  # the document really has string parameters to attack
    assert _counts(database_url) == before


def test_hostile_strings_in_stored_text_fields_are_stored_as_text(
    api: httpx.Client, database_url: str
) -> None:
    failures: list[str] = []
    stored_notes = 0
    for i, payload in enumerate(PAYLOADS):
        text = payload[:200]
        requests = [
            ("/api/v1/notes", {"title": text, "body": payload}),
            (
                "/api/v1/alerts/rules",
                {
                    "name": f"{text}-{i}",
                    "description": payload,
                    "condition": {
                        "kind": "threshold",
                        "feature": "close",
                        "op": "below",
                        "value": 1,
                    },
                    "symbols": [text[:30] or "X"],
                },
            ),
            (
                "/api/v1/strategies",
                {"name": f"{text}-{i}", "spec": {"strategy": "buy_and_hold", "symbols": [text]}},
            ),
            ("/api/v1/alerts/backfill", {"rule": {"name": text, "condition": {"kind": text}}}),
        ]
        for path, body in requests:
            response, elapsed = _send(api, "POST", path, json=body)
            why = _check(response, elapsed, f"POST {path} with {payload[:30]!r}")
            if why:
                failures.append(why)
            elif path == "/api/v1/notes" and response.status_code == 201:
                stored_notes += 1
                assert response.json()["body"] == payload  # stored verbatim, not interpreted

    assert failures == []
    assert stored_notes >= 5
    with psycopg.connect(database_url) as conn:
        for table in TABLES:  # all still there
            conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1')
