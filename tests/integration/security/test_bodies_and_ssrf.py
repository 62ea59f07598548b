"""Hostile request bodies and webhook targets, through the real API.

- A body over REGIMELAB_MAX_BODY_BYTES is a 413 problem, announced or streamed.
- JSON nested far too deep is a 400 problem, not a crash.
- Alert channels pointing inside the network are refused with a problem naming the field,
  whatever the spelling of the address (the unit tests in tests/unit/engine/alerts cover
  the guard itself; here: the odd spellings and DNS answers, end to end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest

import engine.io.targets

PROBLEM: Final = "application/problem+json"
MAX_BODY: Final = 1024 * 1024


def _is_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in response.text


def test_an_oversized_body_is_413_and_stores_nothing(api: httpx.Client) -> None:
    note = {"title": "big", "body": "x" * (MAX_BODY + 10)}

    _is_problem(api.post("/api/v1/notes", json=note), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"title": "big", "body": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = api.post(
        "/api/v1/notes", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _is_problem(streamed, 413)
    assert api.get("/api/v1/notes").json()["total"] == 0
    # the limit leaves room for the largest valid note
    small = api.post("/api/v1/notes", json={"title": "ok", "body": "é" * 20_000})
    assert small.status_code == 201, small.text[:300]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"title": "t", "body": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    ],
    ids=["arrays", "objects", "in-a-field"],
)
def test_deeply_nested_json_is_400(api: httpx.Client, body: bytes) -> None:
    for path in ("/api/v1/notes", "/api/v1/alerts/rules", "/api/v1/alerts/backfill"):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        _is_problem(response, 400)


# ---------------------------------------------------------------- SSRF

INTERNAL_URLS: Final = [
    "http://127.0.0.1/hook",
    "http://localhost:8000/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0177.0.0.1/hook",  # octal
    "http://0x7f.0.0.1/hook",  # hex
    "http://127.1/hook",  # short form
    "http://017700000001/hook",  # octal as one number
    "http://0/hook",
    "HTTP://LOCALHOST/hook",
    "http://user:pass@hooks.example.com/hook",  # credentials before the host
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
]


def _rule(channels: list[dict[str, Any]], name: str = "ssrf") -> dict[str, Any]:
    condition = {"kind": "threshold", "feature": "close", "op": "below", "value": 1}
    return {"name": name, "condition": condition, "symbols": ["SPX"], "channels": channels}


def _refused_field(response: httpx.Response) -> str:
    _is_problem(response, 400)
    fields = [error.get("field") for error in response.json().get("errors", [])]
    assert len(fields) == 1, response.text
    return str(fields[0])


def test_internal_webhook_slack_and_discord_targets_are_refused(api: httpx.Client) -> None:
    for url in INTERNAL_URLS:
        for kind in ("webhook", "slack", "discord"):
            channels = [{"type": "sse"}, {"type": kind, "url": url}]
            created = api.post("/api/v1/alerts/rules", json=_rule(channels))
            assert _refused_field(created) == "channels[1].url", (kind, url, created.text)
    rule = api.post("/api/v1/alerts/rules", json=_rule([{"type": "sse"}])).json()
    changed = api.put(
        f"/api/v1/alerts/rules/{rule['id']}",
        json=_rule([{"type": "webhook", "url": "http://2130706433/"}]),
    )
    assert _refused_field(changed) == "channels[0].url"
    assert api.get("/api/v1/alerts/rules").json()["total"] == 1


def test_names_resolving_to_internal_addresses_are_refused(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {
        "hooks.example.com": ["93.184.215.14"],
        "rebind.example.com": ["93.184.215.14", "10.0.0.5"],  # any bad answer refuses
        "metadata.example.com": ["169.254.169.254"],
        "v6.example.com": ["::1"],
        "mapped.example.com": ["::ffff:192.168.1.1"],
    }
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        if host not in answers:
            raise OSError("Name or service not known")
        return answers[host]

    monkeypatch.setattr(engine.io.targets, "resolve_host", resolve)

    ok = api.post(
        "/api/v1/alerts/rules",
        json=_rule([{"type": "webhook", "url": "https://hooks.example.com/x"}], "public"),
    )
    assert ok.status_code == 201, ok.text
    for host in ("rebind.example.com", "metadata.example.com", "v6.example.com",
                 "mapped.example.com", "nowhere.invalid"):  # fmt: skip
        response = api.post(
            "/api/v1/alerts/rules", json=_rule([{"type": "slack", "url": f"https://{host}/x"}])
        )
        assert _refused_field(response) == "channels[0].url", host
        assert host in response.json()["errors"][0]["message"]
    assert "rebind.example.com" in asked
