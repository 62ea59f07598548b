"""The alerts live feed: new events on a Redis pub/sub channel, for the SSE stream.

Best effort by design: events live in Postgres (and reach their channels through the
outbox); the feed only tells connected dashboards sooner. A Redis outage is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import msgspec
import redis
import redis.asyncio

__all__ = ["events_channel", "publish_events", "subscribe_events"]

log = logging.getLogger(__name__)


def events_channel(prefix: str) -> str:
    """The Redis pub/sub channel new alert events are published on."""
    return f"{prefix}:alerts:events"


def publish_events(
    redis_client: redis.Redis | None, prefix: str, events: Sequence[Mapping[str, Any]]
) -> int:
    """How many events were published (as JSON) to the live feed; 0 if Redis is down.

    Call after the transaction that recorded them commits; the feed is best effort (the
    events themselves are in Postgres), so an outage is logged, never raised.
    """
    if redis_client is None or not events:
        return 0
    channel = events_channel(prefix)
    try:
        with redis_client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(channel, msgspec.json.encode(dict(event)))
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not publish %d alert event(s) to the live feed: %s", len(events), exc)
        return 0
    return len(events)


async def subscribe_events(
    async_redis: redis.asyncio.Redis, prefix: str, *, idle_every: float | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """Events published from now on, as dicts; with `idle_every`, `{}` after that many quiet
    seconds (a cue for an SSE keep-alive comment). Unsubscribes when the consumer stops."""
    loop = asyncio.get_running_loop()
    poll = min(1.0, idle_every) if idle_every else 1.0
    pubsub = async_redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(events_channel(prefix))
        quiet_since = loop.time()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
            if message is not None and message.get("type") == "message":
                try:
                    event = msgspec.json.decode(message["data"])
                except msgspec.DecodeError:
                    log.warning("skipped a malformed message on %s", events_channel(prefix))
                    continue
                if isinstance(event, dict):
                    quiet_since = loop.time()
                    yield event
            elif idle_every and loop.time() - quiet_since >= idle_every:
                quiet_since = loop.time()
                yield {}
    finally:
        with contextlib.suppress(redis.RedisError, OSError):
            await pubsub.unsubscribe()
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
