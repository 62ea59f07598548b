"""The live feed over real HTTP: a client connected to `/api/v1/alerts/stream` receives a new
event within a second of the evaluation that records it, filtered by severity or rule."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.domain.alerts import stream
from engine.alerts.runs import evaluate_alerts
from engine.ingest.service import build_request, run_ingest
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys

BELOW_1000 = {
    "kind": "threshold",
    "feature": "close",
    "op": "crosses_below",
    "value": 1000,
    "hysteresis": 50,
}


@dataclass(frozen=True, slots=True)
class Received:
    """One SSE block as the client saw it, and when (time.monotonic)."""

    at: float
    fields: dict[str, str]
    comments: list[str]


@contextmanager
def _reader(url: str, key: str, **params: Any) -> Iterator[queue.Queue[Received]]:
    """A real streaming client in a thread; each complete SSE block lands in the queue.
    Leaving the block closes the connection at the next line the server sends (tests
    shorten the heartbeat), and the server ends the subscription."""
    blocks: queue.Queue[Received] = queue.Queue()
    stop = threading.Event()
    headers = {"X-API-Key": key, "Accept": "text/event-stream"}

    def read() -> None:
        with (
            httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=30)) as client,
            client.stream("GET", "/api/v1/alerts/stream", params=params, headers=headers) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            comments: list[str] = []
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if not line:
                    blocks.put(Received(time.monotonic(), fields, comments))
                    fields, comments = {}, []
                elif line.startswith(":"):
                    comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield blocks
    finally:
        stop.set()
        thread.join(timeout=5)


def _next(blocks: queue.Queue[Received], timeout: float, *, alerts_only: bool) -> Received:
    deadline = time.monotonic() + timeout
    while True:
        block = blocks.get(timeout=max(0.01, deadline - time.monotonic()))
        if not alerts_only or "data" in block.fields:
            return block


def _ingest(settings: Settings, end: str) -> None:
    assert settings.database_url is not None
    run_ingest(
        settings,
        build_request("sample", "SPX", end=datetime.fromisoformat(end).replace(tzinfo=UTC)),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )


@pytest.fixture
def quick_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats every half second: readers notice they should stop without waiting 15 s."""
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.5)


@pytest.mark.usefixtures("quick_heartbeats")
def test_a_connected_client_gets_the_event_within_a_second(
    api: httpx.Client, api_url: str, api_keys: ApiKeys, settings: Settings
) -> None:
    assert settings.database_url is not None
    _ingest(settings, "2008-09-30")
    rule = api.post(
        "/api/v1/alerts/rules",
        json={
            "name": "spx-below-1000",
            "condition": BELOW_1000,
            "symbols": ["SPX"],
            "channels": [{"type": "sse"}],
        },
    ).json()
    assert evaluate_alerts(settings, settings.database_url, settings.redis_url).events == []
    _ingest(settings, "2008-10-31")

    with (
        _reader(api_url, api_keys.read) as everything,
        _reader(api_url, api_keys.read, severity="critical") as critical,
        _reader(api_url, api_keys.read, rule_id=rule["id"]) as this_rule,
    ):
        for blocks in (everything, critical, this_rule):
            assert "ready" in _next(blocks, 10, alerts_only=False).comments  # subscribed

        started = time.monotonic()
        outcome = evaluate_alerts(settings, settings.database_url, settings.redis_url)
        recorded = time.monotonic()

        assert len(outcome.events) == 1 and outcome.published == 1
        for blocks in (everything, this_rule):
            block = _next(blocks, 5, alerts_only=True)
            assert started <= block.at <= recorded + 1.0  # within 1 s of the evaluation
            assert block.fields["event"] == "alert"
            event = json.loads(block.fields["data"])
            assert block.fields["id"] == str(event["id"]) == str(outcome.events[0]["id"])
            assert event["rule"] == "spx-below-1000" and event["ts"].startswith("2008-10-07")
            assert event["severity"] == "warning" and event["payload"]["feature"] == "close"
        with pytest.raises(queue.Empty):  # a warning is not critical
            _next(critical, 1.0, alerts_only=True)


@pytest.mark.usefixtures("quick_heartbeats")
def test_quiet_streams_send_heartbeats(api_url: str, api_keys: ApiKeys) -> None:
    with _reader(api_url, api_keys.read) as blocks:
        assert "ready" in _next(blocks, 10, alerts_only=False).comments
        started = time.monotonic()
        beats = [_next(blocks, 5, alerts_only=False) for _ in range(2)]

    assert [beat.comments for beat in beats] == [["heartbeat"], ["heartbeat"]]
    assert beats[1].at - started < 2.5


def test_the_stream_needs_a_key_valid_filters_and_an_event_stream_client(
    api_url: str, api_keys: ApiKeys
) -> None:
    url = f"{api_url}/api/v1/alerts/stream"
    sse = {"X-API-Key": api_keys.read, "Accept": "text/event-stream"}
    assert httpx.get(url, headers={"Accept": "text/event-stream"}).status_code == 401
    bad = httpx.get(url, params={"severity": "loud"}, headers=sse)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "severity"
    # a client that reads bodies to their end would wait forever: it gets a 406 at once
    for accept in ("*/*", "application/json", "text/event-stream;q=0"):
        refused = httpx.get(url, headers={"X-API-Key": api_keys.read, "Accept": accept})
        assert refused.status_code == 406, accept
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "Accept: text/event-stream" in refused.json()["detail"]
