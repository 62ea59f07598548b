"""Redis stopped mid-traffic: reads keep answering from Postgres, the cache comes back."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from api.server.app import create_app
from engine.ingest.service import build_request, run_ingest
from engine.io.embedded import EmbeddedValkey
from engine.settings import Settings
from tests.integration.api.conftest import ApiKeys, ServeApi

READS = [
    "/api/v1/instruments",
    "/api/v1/instruments/SPX/bars?start=2015-01-01",
    "/api/v1/instruments/IXIC/bars?start=2016-01-01&format=csv",
    "/api/v1/instruments/SPX/features?names=realized_vol_20d&start=2017-01-01",
]


def _hits(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    pattern = r'regimelab_api_cache_requests_total\{[^}]*outcome="hit"[^}]*\} ([0-9.e+]+)'
    return sum(float(value) for value in re.findall(pattern, text))


class Traffic:
    """Clients reading the API in a loop, counting answers by status."""

    def __init__(self, url: str, key: str, clients: int = 4) -> None:
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(url, key, i), daemon=True)
            for i in range(clients)
        ]

    def _run(self, url: str, key: str, offset: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            i = offset
            while not self._stop.is_set():
                try:
                    status: int | str = client.get(READS[i % len(READS)]).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[status] += 1
                i += 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


@pytest.mark.slow
def test_reads_answer_through_a_redis_outage_and_the_cache_resumes(
    settings: Settings, state_dir: Path, api_keys: ApiKeys, serve_api: ServeApi
) -> None:
    valkey = EmbeddedValkey(state_dir / "valkey")
    redis_url = valkey.start_or_attach()
    try:
        own = dataclasses.replace(settings, redis_url=redis_url, rate_limit_per_minute=0)
        assert own.database_url is not None
        run_ingest(
            own, build_request("sample", "SPX,IXIC"), database_url=own.database_url, redis_url=None
        )
        with (
            serve_api(create_app(own)) as url,
            httpx.Client(base_url=url, timeout=30) as probe,
        ):
            with Traffic(url, api_keys.read) as before:
                time.sleep(2)
            hits_before = _hits(probe)
            assert hits_before > 0

            with Traffic(url, api_keys.read) as during:
                time.sleep(0.5)
                valkey.stop()  # mid-traffic
                assert valkey.running_port() is None
                time.sleep(3)
            ready = probe.get("/ready")  # still ready: Redis is optional, Postgres is not
            assert ready.status_code == 200 and ready.json()["cache"]["status"] != "ok"

            restarted = valkey.start_or_attach()
            assert restarted == redis_url  # same port: clients reconnect by themselves
            with Traffic(url, api_keys.read) as after:
                time.sleep(3)
            hits_after = _hits(probe)
            assert probe.get("/ready").json()["cache"]["status"] == "ok"
    finally:
        valkey.stop()

    for phase in (before, during, after):
        assert set(phase.statuses) == {200}, phase.statuses
    assert sum(during.statuses.values()) > 20  # the outage was served, not stalled
    assert hits_after > hits_before  # cached reads are served from Redis again
