"""The live feed of alert events as Server-Sent Events, for the dashboard.

Each connection subscribes to the Redis channel evaluations publish on (after their
events commit) and forwards every matching event at once as `event: alert` with the event
as JSON data and its id as the SSE id (test notifications come as `event: test`). A
`: ready` comment tells the client the subscription is live; a `: heartbeat` comment every
15 s keeps proxies from closing a quiet connection. Everything awaits Redis: the event loop
is never blocked, and a disconnecting client ends its subscription.

The stream never ends, so a client must ask for it by name (`Accept: text/event-stream`,
as EventSource and SSE libraries do): a generic client that reads bodies to their end
(`Accept: */*`) gets a 406 at once instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import msgspec
import redis.asyncio
from litestar.exceptions import ClientException
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_406_NOT_ACCEPTABLE

from engine.io.alert_feed import subscribe_events

__all__ = [
    "EVENT_STREAM",
    "HEARTBEAT_SECONDS",
    "RETRY_MILLISECONDS",
    "alert_stream",
    "event_stream",
    "wants_event_stream",
]

EVENT_STREAM: Final = "text/event-stream"

HEARTBEAT_SECONDS: Final = 15.0
RETRY_MILLISECONDS: Final = 3000
"""How long an EventSource waits before reconnecting."""
_TICK: Final = 0.5  # seconds between checks of a quiet subscription


def _quality(parameters: str) -> float:
    """The q value of a media range's parameters (1 when absent, 0 when malformed)."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def wants_event_stream(accept: str | None) -> bool:
    """Whether an Accept header names text/event-stream itself (wildcards do not count)."""
    for media_range in (accept or "").split(","):
        media_type, _, parameters = media_range.partition(";")
        if media_type.strip().lower() == EVENT_STREAM and _quality(parameters) > 0:
            return True
    return False


def _matches(event: Mapping[str, Any], severity: str | None, rule_id: int | None) -> bool:
    return (severity is None or event.get("severity") == severity) and (
        rule_id is None or event.get("rule_id") == rule_id
    )


def _message(event: Mapping[str, Any]) -> ServerSentEventMessage:
    kind = "test" if event.get("test") else "alert"
    return ServerSentEventMessage(
        data=msgspec.json.encode(event).decode(), event=kind, id=event.get("id")
    )


async def alert_stream(
    redis_client: redis.asyncio.Redis,
    prefix: str,
    *,
    severity: str | None = None,
    rule_id: int | None = None,
) -> AsyncIterator[ServerSentEventMessage]:
    """SSE messages: `: ready` once subscribed, then each matching event as it is
    published, and a heartbeat comment after 15 quiet seconds."""
    loop = asyncio.get_running_loop()
    events = subscribe_events(redis_client, prefix, idle_every=_TICK)
    ready = False
    last_write = loop.time()
    try:
        async for event in events:
            if not ready:  # the first item comes after the subscription is in place
                ready, last_write = True, loop.time()
                yield ServerSentEventMessage(data=None, comment="ready", retry=RETRY_MILLISECONDS)
            if event and _matches(event, severity, rule_id):
                last_write = loop.time()
                yield _message(event)
            elif loop.time() - last_write >= HEARTBEAT_SECONDS:
                last_write = loop.time()
                yield ServerSentEventMessage(data=None, comment="heartbeat")
    finally:
        await events.aclose()


def event_stream(
    redis_client: redis.asyncio.Redis,
    prefix: str,
    accept: str | None,
    *,
    severity: str | None = None,
    rule_id: int | None = None,
) -> ServerSentEvent:
    """The `text/event-stream` response of :func:`alert_stream`; 406 unless `accept` asks
    for an event stream."""
    if not wants_event_stream(accept):
        raise ClientException(
            detail="this route streams events without end: send 'Accept: text/event-stream' "
            "(EventSource does); GET /api/v1/alerts/events lists recorded events",
            status_code=HTTP_406_NOT_ACCEPTABLE,
        )
    return ServerSentEvent(
        alert_stream(redis_client, prefix, severity=severity, rule_id=rule_id),
        headers={"Cache-Control": "no-store"},
    )
