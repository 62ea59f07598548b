"""Alert services: rules (validated, stored), test sends, backfills, evaluation, events.

Rules are checked twice: by type as the body decodes, then by `validate_rule` (known
features, time zones, public webhook hosts) in a worker thread, since checking a host
resolves it. Every failure is a 400 problem whose `errors[].field` names the culprit as
the engine does ("condition.value", "channels[0].url").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Final

import msgspec
import polars as pl
import psycopg
from anyio import to_thread
from litestar import Response
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_409_CONFLICT

from api.domain.alerts.schemas import (
    MAX_BACKFILL_FIRINGS,
    MAX_BACKFILL_SYMBOLS,
    MAX_BACKFILL_YEARS,
    REDACTED,
    AlertDelivery,
    AlertEvent,
    AlertEventDetail,
    AlertRule,
    BackfillFiring,
    BackfillRequest,
    BackfillResult,
    ChannelOutcome,
    EvaluateParams,
    RuleTestResult,
    Severity,
)
from api.domain.market.services import parse_time
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobEnv, JobRunner, accepted
from api.lib.pagination import Page, Pagination
from engine.alerts import (
    AlertRuleSpec,
    RuleError,
    WebhookChannel,
    backfill,
    from_row,
    load_alert_inputs,
    parse_rule,
    to_row,
    validate_rule,
    watched_symbols,
)
from engine.alerts.conditions import rule_symbols
from engine.alerts.runs import event_record, rule_source
from engine.io import alerts as store
from engine.io.alert_delivery import DeliveryWorker
from engine.io.alert_feed import publish_events
from engine.io.cache import client
from engine.schema import SYMBOL, TS
from engine.settings import Settings

__all__ = [
    "backfill_rule",
    "canonical_rule",
    "create_rule",
    "delete_rule",
    "field_of",
    "get_event",
    "get_rule",
    "list_events",
    "list_rules",
    "replace_rule",
    "rule_problem",
    "send_test_notifications",
    "storage_problem",
    "submit_evaluation",
    "test_rule",
]

_TEST_SYMBOL: Final = "TEST"
MAX_COOLDOWN_SECONDS: Final = 2**31 - 1
_NAMED_FIELD: Final = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]+)`")


# ---------------------------------------------------------------- errors


def invalid(key: str, message: str, source: str | None = "body") -> ValidationException:
    """A 400 problem naming the offending input `key`."""
    return ValidationException(
        detail=f"{key}: {message}" if key else message,
        extra=[{"key": key or None, "message": message, "source": source}],
    )


def rule_problem(exc: RuleError, prefix: str = "") -> ValidationException:
    """A RuleError as a 400 naming its field (under `prefix`, e.g. `rule.` in a backfill)."""
    field = f"{prefix}{exc.field}" if exc.field else prefix.rstrip(".")
    return invalid(field, exc.message)


def field_of(key: object, message: str) -> str | None:
    """The field a decoding error is about, named as `RuleError.field` names it: the path
    (`data` is the body itself) plus the field a "missing required field `x`" or
    "contains unknown field `x`" message names."""
    path = None if key is None or key == "data" else str(key)
    named = _NAMED_FIELD.search(message)
    if named is not None:
        path = f"{path}.{named['name']}" if path else named["name"]
    return path


def canonical_rule(data: object, prefix: str = "") -> None:
    """Parse decoded JSON `data` as the engine does (`parse_rule`: a 400 naming the field as
    RuleError does, "HH:MM" times accepted) and rewrite it in place in canonical form, which
    the route's typed body then decodes as is."""
    if not isinstance(data, dict):
        raise invalid(prefix.rstrip("."), f"a rule is a JSON object, not {type(data).__name__}")
    try:
        spec = parse_rule(data)
    except RuleError as exc:
        raise rule_problem(exc, prefix) from None
    data.clear()
    data.update(msgspec.to_builtins(spec))


def _missing(detail: str) -> NotFoundException:
    return NotFoundException(detail=detail)


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string in `value` holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        items = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    for child, item in items:
        found = _nul_path(item, child)
        if found is not None:
            return found
    return None


def storage_problem(spec: AlertRuleSpec) -> tuple[str, str] | None:
    """(field, message) if `spec` cannot be stored as it is, else None: Postgres text
    holds no NUL characters, and the cooldown is a 32-bit integer."""
    if spec.cooldown_seconds > MAX_COOLDOWN_SECONDS:
        return "cooldown_seconds", f"must be at most {MAX_COOLDOWN_SECONDS} (68 years)"
    found = _nul_path(msgspec.to_builtins(spec), "")
    if found is not None:
        return found, "must not contain NUL characters"
    return None


async def _validate(spec: AlertRuleSpec, settings: Settings, prefix: str = "") -> None:
    """`validate_rule` off the event loop (checking a webhook host resolves its name)."""
    problem = storage_problem(spec)
    if problem is not None:
        raise invalid(f"{prefix}{problem[0]}", problem[1])
    check = functools.partial(
        validate_rule, spec, allow_private_targets=settings.alert_allow_private_targets
    )
    try:
        await to_thread.run_sync(check)
    except RuleError as exc:
        raise rule_problem(exc, prefix) from None


# ---------------------------------------------------------------- rules


def _event(row: Mapping[str, Any]) -> AlertEvent:
    """An `alert_events` row as the API shows it (the live feed's record, typed)."""
    return msgspec.convert(event_record(row), AlertEvent)


def _redacted(spec: AlertRuleSpec) -> AlertRuleSpec:
    """`spec` with webhook secrets replaced by the placeholder."""
    channels = [
        msgspec.structs.replace(ch, secret=REDACTED)
        if isinstance(ch, WebhookChannel) and ch.secret is not None
        else ch
        for ch in spec.channels
    ]
    return msgspec.structs.replace(spec, channels=channels)


def _rule(row: Mapping[str, Any]) -> AlertRule:
    spec = _redacted(from_row(row))
    return AlertRule(
        **msgspec.structs.asdict(spec),
        id=int(row["id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _check_placeholders(spec: AlertRuleSpec, stored: AlertRuleSpec | None) -> AlertRuleSpec:
    """`spec` with each `********` secret replaced by the stored secret of the same URL;
    400 when there is none to keep."""
    kept = {
        ch.url: ch.secret
        for ch in (stored.channels if stored is not None else [])
        if isinstance(ch, WebhookChannel) and ch.secret is not None
    }
    channels = list(spec.channels)
    for index, channel in enumerate(channels):
        if isinstance(channel, WebhookChannel) and channel.secret == REDACTED:
            if channel.url not in kept:
                raise invalid(
                    f"channels[{index}].secret",
                    f"{REDACTED!r} keeps a stored secret, and this rule stores none for "
                    "this URL: send the secret itself",
                )
            channels[index] = msgspec.structs.replace(channel, secret=kept[channel.url])
    return msgspec.structs.replace(spec, channels=channels)


async def list_rules(database: Database, page: Pagination, enabled: bool | None) -> Page[AlertRule]:
    """Stored rules by name, optionally only the enabled (or disabled) ones."""
    rows, total = await database.run(
        lambda conn: store.list_rules(conn, enabled=enabled, limit=page.limit, offset=page.offset)
    )
    return page.page([_rule(row) for row in rows], total)


async def get_rule(database: Database, rule_id: int) -> AlertRule:
    """One stored rule; 404 if there is none."""
    row = await database.run(lambda conn: store.get_rule(conn, rule_id))
    if row is None:
        raise _missing(f"no alert rule {rule_id}")
    return _rule(row)


def _conflict(exc: store.RuleExistsError) -> ClientException:
    return ClientException(detail=str(exc), status_code=HTTP_409_CONFLICT)


async def create_rule(database: Database, settings: Settings, spec: AlertRuleSpec) -> AlertRule:
    """Validate and store a new rule; 409 if the name is taken."""
    checked = _check_placeholders(spec, None)
    await _validate(checked, settings)

    def write(conn: psycopg.Connection) -> dict[str, Any] | None:
        return store.get_rule(conn, store.insert_rule(conn, to_row(checked)))

    try:
        row = await database.run(write)
    except store.RuleExistsError as exc:
        raise _conflict(exc) from None
    assert row is not None
    return _rule(row)


async def replace_rule(
    database: Database, settings: Settings, rule_id: int, spec: AlertRuleSpec
) -> AlertRule:
    """Replace a stored rule (secrets sent as `********` are kept); 404 if there is none,
    409 if it takes another rule's name. The edited rule judges bars stored from now on."""
    current = await database.run(lambda conn: store.get_rule(conn, rule_id))
    if current is None:
        raise _missing(f"no alert rule {rule_id}")
    checked = _check_placeholders(spec, from_row(current))
    await _validate(checked, settings)
    try:
        row = await database.run(lambda conn: store.update_rule(conn, rule_id, to_row(checked)))
    except store.RuleExistsError as exc:
        raise _conflict(exc) from None
    if row is None:
        raise _missing(f"no alert rule {rule_id}")
    return _rule(row)


async def delete_rule(database: Database, rule_id: int) -> None:
    """Delete a rule with its events and deliveries; 404 if there is none."""
    if not await database.run(lambda conn: store.delete_rule(conn, rule_id)):
        raise _missing(f"no alert rule {rule_id}")


# ---------------------------------------------------------------- test sends


def _test_event(rule_id: int, spec: AlertRuleSpec) -> dict[str, Any]:
    now = datetime.now(UTC)
    message = f"[TEST] RegimeLab test notification for alert rule {spec.name!r}: no condition fired"
    return {
        "id": 0,
        "rule_id": rule_id,
        "rule": spec.name,
        "symbol": _TEST_SYMBOL,
        "ts": now.isoformat(),
        "severity": spec.severity,
        "message": message,
        "payload": {"test": True, "rule": spec.name},
        "dedupe_key": f"test:{rule_id}:{now.isoformat()}",
        "created_at": now.isoformat(),
        "test": True,
    }


def send_test_notifications(env: JobEnv, rule_id: int, spec: AlertRuleSpec) -> list[ChannelOutcome]:
    """Send the test event through each channel now, in order; never raises per channel."""
    event = _test_event(rule_id, spec)
    outcomes = []
    with DeliveryWorker(env.database_url, env.settings, limit=1, timeout=5.0) as worker:
        for channel in msgspec.to_builtins(spec.channels):
            kind = str(channel["type"])
            if kind == "sse":
                outcomes.append(_publish_test(env, event))
                continue
            target = store.channel_target(channel)
            assert target is not None
            claimed = store.Claimed(
                id=0,
                event_id=0,
                channel=kind,
                target=target,
                attempts=1,
                rule_id=rule_id,
                rule=spec.name,
                symbol=_TEST_SYMBOL,
                ts=datetime.fromisoformat(event["ts"]),
                severity=spec.severity,
                message=event["message"],
                payload=event["payload"],
                config=channel,
            )
            error = worker.send_now(claimed)
            outcomes.append(
                ChannelOutcome(
                    channel=kind, target=target, ok=error is None, detail=error or "sent"
                )
            )
    return outcomes


def _publish_test(env: JobEnv, event: Mapping[str, Any]) -> ChannelOutcome:
    redis_client = None if env.redis_url is None else client(env.redis_url)
    try:
        published = publish_events(redis_client, env.settings.cache_prefix, [event])
    finally:
        if redis_client is not None:
            redis_client.close()
    detail = "published on the live feed" if published else "the live feed (Redis) is unavailable"
    return ChannelOutcome(channel="sse", target=None, ok=published == 1, detail=detail)


async def test_rule(database: Database, env: JobEnv, rule_id: int) -> RuleTestResult:
    """Send one test notification through each channel of a stored rule."""
    row = await database.run(lambda conn: store.get_rule(conn, rule_id))
    if row is None:
        raise _missing(f"no alert rule {rule_id}")
    spec = from_row(row)
    if not spec.channels:
        raise invalid("channels", f"alert rule {spec.name!r} has no channels to test", None)
    outcomes = await to_thread.run_sync(send_test_notifications, env, rule_id, spec)
    return RuleTestResult(rule_id=rule_id, rule=spec.name, outcomes=outcomes)


# ---------------------------------------------------------------- backfill


def _window(data: BackfillRequest) -> tuple[datetime, datetime | None]:
    """(first moment that may fire, last moment evaluated or None for the newest bar)."""
    end = data.end
    start = data.start
    if start is not None and end is not None and start > end:
        raise invalid("start", f"start ({start}) is after end ({end})")
    last = end or datetime.now(UTC).date()
    years_back = max(last.year - MAX_BACKFILL_YEARS, date.min.year)
    earliest = date(years_back, last.month, min(last.day, 28))
    if start is None:
        start = earliest
    elif start < earliest:
        raise invalid(
            "start", f"a backfill covers at most {MAX_BACKFILL_YEARS} years (from {earliest})"
        )
    first = datetime.combine(start, time.min, UTC)
    return first, None if end is None else datetime.combine(end, time.max, UTC)


async def _backfill_spec(database: Database, data: BackfillRequest) -> tuple[AlertRuleSpec, str]:
    """The rule to backfill and the prefix its errors are named under."""
    if (data.rule is None) == (data.rule_id is None):
        raise invalid("rule", "give either `rule` (a rule to try) or `rule_id` (a stored rule)")
    if data.rule is not None:
        return data.rule, "rule."
    rule_id = int(data.rule_id or 0)
    row = await database.run(lambda conn: store.get_rule(conn, rule_id))
    if row is None:
        raise _missing(f"no alert rule {rule_id}")
    return from_row(row), ""


def _firings(events: pl.DataFrame) -> list[BackfillFiring]:
    return [
        BackfillFiring(
            symbol=row[SYMBOL],
            ts=row[TS],
            severity=row["severity"],
            message=row["message"],
            payload=msgspec.json.decode(row["payload"]),
        )
        for row in events.head(MAX_BACKFILL_FIRINGS).iter_rows(named=True)
    ]


async def backfill_rule(
    database: Database, settings: Settings, data: BackfillRequest
) -> BackfillResult:
    """Every bar in the window on which the rule would have fired, oldest first."""
    spec, prefix = await _backfill_spec(database, data)
    # where a rule would deliver does not change when it fires: channels are not checked
    await _validate(msgspec.structs.replace(spec, channels=[]), settings, prefix)
    watchlist = list(settings.watchlist)
    if len(watched_symbols([spec], watchlist)) > MAX_BACKFILL_SYMBOLS:
        raise invalid(
            f"{prefix}symbols", f"a backfill evaluates at most {MAX_BACKFILL_SYMBOLS} symbols"
        )
    first, last = _window(data)

    def run(conn: psycopg.Connection) -> tuple[pl.DataFrame, list[str]]:
        inputs = load_alert_inputs(conn, [spec], watchlist, start=first, end=last)
        source = rule_source(spec, inputs)
        return backfill(spec, inputs, start=first), rule_symbols(spec, inputs, source[SYMBOL])

    events, symbols = await database.run(run)
    return BackfillResult(
        rule=spec.name,
        symbols=symbols,
        start=first.date(),
        end=None if last is None else last.date(),
        count=events.height,
        truncated=events.height > MAX_BACKFILL_FIRINGS,
        firings=_firings(events),
    )


# ---------------------------------------------------------------- evaluation


async def submit_evaluation(
    database: Database, jobs: JobRunner, data: EvaluateParams | None
) -> Response[JobAccepted]:
    """Queue an `alerts.evaluate` job; 404 if a named rule is not stored, 400 if disabled."""
    params = data or EvaluateParams()
    if params.rules is not None:
        names = list(dict.fromkeys(params.rules))
        rows = await database.run(lambda conn: [store.get_rule(conn, name) for name in names])
        for index, (name, row) in enumerate(zip(names, rows, strict=True)):
            if row is None:
                raise _missing(f"no alert rule named {name!r}")
            if not row["enabled"]:
                raise invalid(f"rules[{index}]", f"alert rule {name!r} is disabled")
    job_id = await jobs.submit("alerts.evaluate", params)
    assert job_id is not None  # no slot key: always queued
    return accepted(job_id, "alerts.evaluate")


# ---------------------------------------------------------------- events


async def list_events(
    database: Database,
    page: Pagination,
    *,
    rule_id: int | None,
    symbol: str | None,
    severity: Severity | None,
    since: str | None,
) -> Page[AlertEvent]:
    """Events newest bar first, optionally of one rule, symbol or severity, from `since`."""
    start = parse_time(since, "since")
    rows, total = await database.run(
        lambda conn: store.list_events(
            conn,
            rule_id=rule_id,
            symbol=symbol,
            severity=severity,
            since=start,
            limit=page.limit,
            offset=page.offset,
        )
    )
    return page.page([_event(row) for row in rows], total)


async def get_event(database: Database, event_id: int) -> AlertEventDetail:
    """One event with its deliveries; 404 if there is none."""

    def read(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return store.get_events(conn, [event_id]), store.list_deliveries(conn, event_id)

    events, deliveries = await database.run(read)
    if not events:
        raise _missing(f"no alert event {event_id}")
    return AlertEventDetail(
        **msgspec.structs.asdict(_event(events[0])),
        deliveries=[msgspec.convert(row, AlertDelivery) for row in deliveries],
    )
