"""Request ids, access logs, Prometheus metrics: what an operator sees of the API.

Every request gets an id (the caller's `X-Request-ID` if it sent a sane one, else a new
one), echoed in the response and attached to every log line written while serving it.
Metrics live in one registry exposed at `/metrics`; with several server workers
(`PROMETHEUS_MULTIPROC_DIR` set by `regimelab serve --workers`) they are summed across them.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Final, cast

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.lib.logs import REQUEST_ID

__all__ = [
    "CACHE_REQUESTS",
    "JOB_DURATION",
    "PROVIDER_CALLS",
    "REGISTRY",
    "REQUEST_LATENCY",
    "SCHEDULER_LEADER",
    "ObservabilityMiddleware",
    "metrics_text",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)
REQUEST_LATENCY: Final = Histogram(
    "regimelab_http_request_duration_seconds",
    "API request latency by route template, method and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
CACHE_REQUESTS: Final = Counter(
    "regimelab_api_cache_requests",
    "Cached API reads by route and outcome (hit, miss, refresh, bypass)",
    ["route", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION: Final = Histogram(
    "regimelab_job_duration_seconds",
    "Job run durations by job and final status",
    ["job", "status"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
    registry=REGISTRY,
)
PROVIDER_CALLS: Final = Counter(
    "regimelab_provider_calls",
    "Provider dataset reads made by jobs, by provider and cache outcome",
    ["provider", "outcome"],
    registry=REGISTRY,
)
SCHEDULER_LEADER: Final = Gauge(
    "regimelab_scheduler_leader",
    "1 while this replica holds the scheduler leader lock",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
_SANE_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("regimelab.api.access")


def metrics_text() -> bytes:
    """The Prometheus exposition of this replica (all its worker processes)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _incoming_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.match(text):
                return text
    return uuid.uuid4().hex


class ObservabilityMiddleware(ASGIMiddleware):
    """Request id in and out, latency histogram, one access-log line per request."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        method = cast("HTTPScope", scope)["method"]
        rid = _incoming_id(scope)
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        except HTTPException as exc:  # answered by the outer exception handler
            status = exc.status_code
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            REQUEST_LATENCY.labels(method, route, str(status)).observe(elapsed)
            api_key = scope.get("regimelab_api_key")
            access_log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "api_key": getattr(api_key, "name", None),
                },
            )
            REQUEST_ID.reset(token)
