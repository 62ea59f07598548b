"""A real API server on a loopback port, in a background thread, per test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from litestar import Litestar

from api.server.app import create_app
from engine.io.api_keys import create_api_key, server_secret
from engine.settings import Settings

ServeApi = Callable[[Litestar], AbstractContextManager[str]]


@contextlib.contextmanager
def _running(app: Litestar) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("API server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def serve_api() -> ServeApi:
    """Serve a given app over real HTTP for the duration of a `with` block."""
    return _running


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    """Base URL of the API served over real HTTP against this test's database and Redis."""
    with _running(create_app(settings)) as url:
        yield url


@pytest.fixture
def http(api_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the running API."""
    with httpx.Client(base_url=api_url, timeout=10) as client:
        yield client


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """One live key per scope, for tests that call `/api/v1`."""

    read: str
    write: str
    admin: str


@pytest.fixture
def api_keys(settings: Settings) -> ApiKeys:
    """A read, a write and an admin key in this test's database."""
    assert settings.database_url is not None
    secret = server_secret(settings)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        keys = {
            scope: create_api_key(conn, f"test-{scope}", scope, secret)[1]
            for scope in ("read", "write", "admin")
        }
    return ApiKeys(**keys)


@pytest.fixture
def api(api_url: str, api_keys: ApiKeys) -> Iterator[httpx.Client]:
    """An HTTP client for the running API that sends the admin key."""
    headers = {"Authorization": f"Bearer {api_keys.admin}"}
    with httpx.Client(base_url=api_url, timeout=30, headers=headers) as client:
        yield client
