"""Helpers for the backtest API tests: finish a queued job, check a problem body."""

from __future__ import annotations

import time
from typing import Any

import httpx

SYMBOLS = ["SYN0000", "SYN0001"]
PROBLEM = "application/problem+json"


def finished_job(
    api: httpx.Client, accepted: httpx.Response, timeout: float = 60
) -> dict[str, Any]:
    """The job row of a 202 response once the job has finished (failing the test if it failed)."""
    assert accepted.status_code == 202, accepted.text
    url = accepted.headers["location"]
    assert url == accepted.json()["status_url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(url)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] == "succeeded":
            return body
        assert body["status"] != "failed", body["error"]
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish in {timeout} s")


def bad_input(response: httpx.Response) -> tuple[str, str]:
    """(field, message) of a 400 problem that names one offending field."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 400 and body["title"] and body["detail"]
    (error,) = body["errors"]
    return str(error.get("field")), str(error["message"])
