"""Calls to a running RegimeLab API from research code: build the request, show it as a
curl command, send it with an API key, read the answer (problem details included).

Notebooks use this to hand work to the API (save an alert rule, save a strategy for the
scheduler's signals) rather than writing the tables themselves, so the API's validation,
cache invalidation and scheduling apply exactly as for any other client.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = ["API_KEY_ENV", "API_URL_ENV", "ApiCall", "ApiReply", "api_call", "send"]

API_URL_ENV: Final = "REGIMELAB_API_URL"
API_KEY_ENV: Final = "REGIMELAB_API_KEY"


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One JSON request to the API: method, absolute URL and body."""

    method: str
    url: str
    payload: Any

    @property
    def body(self) -> str:
        """The JSON body, indented for reading."""
        return json.dumps(self.payload, indent=2, default=str)

    def curl(self, key: str = f"${API_KEY_ENV}") -> str:
        """The same call as a shell command (`key` is written as given: by default the
        environment variable, so no secret lands in a notebook)."""
        header = f'"X-API-Key: {key}"' if key.startswith("$") else shlex.quote(f"X-API-Key: {key}")
        return (
            f"curl -X {self.method} {shlex.quote(self.url)} \\\n"
            f"  -H {header} -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(json.dumps(self.payload, default=str))}"
        )


@dataclass(frozen=True, slots=True)
class ApiReply:
    """The API's answer: status code and decoded JSON body (text when not JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (2xx)."""
        return 200 <= self.status < 300

    @property
    def detail(self) -> str:
        """One line for the user: the problem detail of an error, else the status."""
        if isinstance(self.body, dict):
            detail = self.body.get("detail") or self.body.get("title")
            if detail:
                return f"{self.status}: {detail}"
        return f"{self.status}: {self.body}" if not self.ok else f"{self.status}"


def api_call(base_url: str, path: str, payload: Any, *, method: str = "POST") -> ApiCall:
    """A call of `path` (e.g. /api/v1/alerts/rules) on the API at `base_url`."""
    return ApiCall(method=method, url=f"{base_url.rstrip('/')}/{path.lstrip('/')}", payload=payload)


def send(call: ApiCall, api_key: str, *, timeout: float = 10.0) -> ApiReply:
    """Send `call` with `api_key`; the reply, or status 0 with the reason when the API
    cannot be reached."""
    try:
        response = httpx.request(
            call.method,
            call.url,
            json=call.payload,
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return ApiReply(status=0, body={"detail": f"cannot reach {call.url}: {exc}"})
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return ApiReply(status=response.status_code, body=body)
