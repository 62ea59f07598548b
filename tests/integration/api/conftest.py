"""A real API server on a loopback port, in a background thread, per test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
import uvicorn
from litestar import Litestar

from api.server.app import create_app
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
