"""Alert rules, events and the delivery outbox in Postgres.

An event is one firing of a rule on one bar; its dedupe key (rule, symbol, bar ts) is
unique, so re-running an evaluation records nothing twice. The deliveries of an event are
written in the same transaction as the event (a transactional outbox): a crash can lose
neither. Senders claim due deliveries with `FOR UPDATE SKIP LOCKED`, which moves them to
`sending` with a lease (`next_attempt_at` is its deadline); a sender that dies mid-attempt
leaves a lease that expires, and the next claim takes the delivery again. Failures go back
to `pending` with exponential backoff until `max_attempts`, then `failed` for good.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import polars as pl
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from engine.errors import RegimeLabError
from engine.io.bars import instrument_ids
from engine.io.db import fetch_page

__all__ = [
    "FIRING_COLUMNS",
    "Claimed",
    "RuleExistsError",
    "channel_target",
    "claim_deliveries",
    "delete_rule",
    "get_events",
    "get_rule",
    "insert_rule",
    "last_fired",
    "list_deliveries",
    "list_events",
    "list_rules",
    "mark_failed",
    "mark_sent",
    "record_events",
    "update_rule",
]

FIRING_COLUMNS: Final = ("rule_id", "symbol", "ts", "severity", "message", "payload", "dedupe_key")
CHANNEL_TYPES: Final = frozenset({"webhook", "slack", "discord", "email", "sse"})

_RULE_FIELDS: Final = frozenset(
    {
        "name",
        "kind",
        "params",
        "symbols",
        "watchlist",
        "channels",
        "cooldown_seconds",
        "active_hours",
        "severity",
        "enabled",
    }
)
_JSON_FIELDS: Final = frozenset({"params", "channels", "active_hours"})
_RULE_COLUMNS: Final = (
    "id, name, kind, params, symbols, watchlist, channels, cooldown_seconds, active_hours, "
    "severity, enabled, created_at, updated_at"
)
_EVENT_COLUMNS: Final = (
    "id, rule_id, (SELECT r.name FROM alert_rules r WHERE r.id = rule_id) AS rule, "
    "(SELECT i.symbol FROM instruments i WHERE i.id = instrument_id) AS symbol, ts, "
    "dedupe_key, severity, message, payload, created_at"
)
_DELIVERY_COLUMNS: Final = (
    "id, event_id, channel, target, status::text AS status, attempts, next_attempt_at, "
    "last_error, delivered_at, created_at"
)


class RuleExistsError(RegimeLabError):
    """An alert rule with this name exists already (a 409 for the API)."""


# ---------------------------------------------------------------- rules


def _rule_values(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(row) - _RULE_FIELDS)
    if unknown:
        raise ValueError(f"unknown alert rule field(s): {', '.join(unknown)}")
    values = dict(row)
    for name in _JSON_FIELDS & values.keys():
        if values[name] is not None:
            values[name] = Jsonb(values[name])
    if values.get("symbols") is not None:
        values["symbols"] = list(values["symbols"])
    return values


def insert_rule(conn: psycopg.Connection, row: Mapping[str, Any]) -> int:
    """Id of the new rule stored from `row` (rule columns); RuleExistsError if the name is taken."""
    values = _rule_values(row)
    if not values.get("name") or not values.get("kind"):
        raise ValueError("an alert rule needs a name and a kind")
    query = sql.SQL("INSERT INTO alert_rules ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    try:
        with conn.transaction():
            found = conn.execute(query, list(values.values())).fetchone()
    except psycopg.errors.UniqueViolation:
        raise RuleExistsError(f"an alert rule named {values['name']!r} exists already") from None
    assert found is not None
    return int(found[0])


def update_rule(
    conn: psycopg.Connection, rule_id: int, changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The rule after applying `changes` (rule columns), or None if there is no such rule."""
    values = _rule_values(changes)
    if not values:
        return get_rule(conn, rule_id)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder()) for name in values
    )
    query = sql.SQL(
        "UPDATE alert_rules SET {}, updated_at = now() WHERE id = %s RETURNING {}"
    ).format(assignments, sql.SQL(_RULE_COLUMNS))
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, [*values.values(), rule_id]).fetchone()
    except psycopg.errors.UniqueViolation:
        raise RuleExistsError(f"an alert rule named {values['name']!r} exists already") from None


def delete_rule(conn: psycopg.Connection, rule_id: int) -> bool:
    """True if the rule existed; its events and their deliveries go with it."""
    row = conn.execute("DELETE FROM alert_rules WHERE id = %s RETURNING id", (rule_id,)).fetchone()
    return row is not None


def get_rule(conn: psycopg.Connection, key: int | str) -> dict[str, Any] | None:
    """The rule with this id (int) or name (str) as a row dict, or None."""
    column = "name" if isinstance(key, str) else "id"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL("SELECT {} FROM alert_rules WHERE {} = %s").format(
                sql.SQL(_RULE_COLUMNS), sql.Identifier(column)
            ),
            (key,),
        ).fetchone()


def list_rules(
    conn: psycopg.Connection, *, enabled: bool | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of rules by name (row dicts), and how many match in all."""
    where = sql.SQL("TRUE") if enabled is None else sql.SQL("enabled = %s")
    args = [] if enabled is None else [enabled]
    return fetch_page(
        conn, "alert_rules", _RULE_COLUMNS, where, args, order_by="name", limit=limit, offset=offset
    )


def last_fired(
    conn: psycopg.Connection, rule_ids: Iterable[int]
) -> dict[tuple[int, str], datetime]:
    """Bar timestamp of the latest event per (rule id, symbol): cooldowns across runs."""
    rows = conn.execute(
        "SELECT e.rule_id, i.symbol, max(e.ts) FROM alert_events e "
        "JOIN instruments i ON i.id = e.instrument_id WHERE e.rule_id = ANY(%s) "
        "GROUP BY e.rule_id, i.symbol",
        (list(rule_ids),),
    ).fetchall()
    return {(int(rule_id), str(symbol)): ts for rule_id, symbol, ts in rows}


# ---------------------------------------------------------------- events


def channel_target(channel: Mapping[str, Any]) -> str | None:
    """Where a channel delivers (URL, or comma-joined addresses); None for the SSE feed."""
    kind = channel.get("type")
    if kind not in CHANNEL_TYPES:
        raise ValueError(f"unknown alert channel type {kind!r}")
    if kind == "sse":
        return None
    if kind == "email":
        recipients = channel.get("to") or []
        if isinstance(recipients, str) or not recipients:
            raise ValueError("an email channel needs a list of recipients in 'to'")
        return ",".join(str(address) for address in recipients)
    url = channel.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError(f"a {kind} channel needs a 'url'")
    return url


def _outbox_targets(channels: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    targets = [(str(ch["type"]), channel_target(ch)) for ch in channels]
    return list(dict.fromkeys((kind, target) for kind, target in targets if target is not None))


_INSERT_EVENTS: Final = (
    "INSERT INTO alert_events (rule_id, instrument_id, ts, dedupe_key, severity, message, "
    "payload) SELECT r, i, t, k, s, m, coalesce(p, '{}')::jsonb FROM unnest(%s::int[], "
    "%s::int[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    "AS f(r, i, t, k, s, m, p) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, rule_id"
)
_INSERT_DELIVERIES: Final = (
    "INSERT INTO alert_deliveries (event_id, channel, target) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
    "ON CONFLICT (event_id, channel, target) DO NOTHING"
)


def record_events(
    conn: psycopg.Connection,
    firings: pl.DataFrame,
    channels_by_rule: Mapping[int, Sequence[Mapping[str, Any]]],
) -> list[int]:
    """Ids of the events newly stored from `firings`, each with its outbox deliveries.

    `firings` has FIRING_COLUMNS (payload as JSON text). Firings whose dedupe key is stored
    already are skipped, so recording the same firings again inserts nothing. Every new
    event gets one pending delivery per channel of its rule except `sse` (the live feed is
    published, not delivered). Events and deliveries commit together, or not at all (a
    savepoint when the caller has a transaction open: then the caller commits).
    """
    if firings.is_empty():
        return []
    missing = [name for name in FIRING_COLUMNS if name not in firings.columns]
    if missing:
        raise ValueError(f"firings lack column(s): {', '.join(missing)}")
    ts_type = firings.schema["ts"]
    if not isinstance(ts_type, pl.Datetime) or ts_type.time_zone is None:
        raise ValueError(f"firings.ts must be timezone-aware datetimes, not {ts_type}")
    frame = firings.unique(subset="dedupe_key", keep="first", maintain_order=True)
    rule_ids = frame["rule_id"].cast(pl.Int64).to_list()
    targets = {rule: _outbox_targets(channels_by_rule.get(rule, ())) for rule in set(rule_ids)}
    symbols = frame["symbol"].to_list()
    with conn.transaction():
        ids = instrument_ids(conn, sorted(set(symbols)))
        created = conn.execute(
            _INSERT_EVENTS,
            (
                rule_ids,
                [ids[symbol] for symbol in symbols],
                frame["ts"].to_list(),
                frame["dedupe_key"].to_list(),
                frame["severity"].to_list(),
                frame["message"].to_list(),
                frame["payload"].to_list(),
            ),
        ).fetchall()
        outbox = [
            (event_id, kind, target)
            for event_id, rule_id in created
            for kind, target in targets[rule_id]
        ]
        if outbox:
            event_ids, kinds, addresses = (list(column) for column in zip(*outbox, strict=True))
            conn.execute(_INSERT_DELIVERIES, (event_ids, kinds, addresses))
    return sorted(int(event_id) for event_id, _ in created)


def get_events(conn: psycopg.Connection, event_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The events with these ids as dicts (id, rule_id, rule, symbol, ts, ...), by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_EVENT_COLUMNS} FROM alert_events WHERE id = ANY(%s) ORDER BY id",
            (list(event_ids),),
        ).fetchall()


def list_events(
    conn: psycopg.Connection,
    *,
    rule_id: int | None = None,
    symbol: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of events, newest bar first (the columns of `get_events`), and the total."""
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    args: list[object] = []
    if severity is not None:
        clauses.append(sql.SQL("severity = %s"))
        args.append(severity)
    if rule_id is not None:
        clauses.append(sql.SQL("rule_id = %s"))
        args.append(rule_id)
    if symbol is not None:
        clauses.append(sql.SQL("instrument_id IN (SELECT id FROM instruments WHERE symbol = %s)"))
        args.append(symbol)
    if since is not None:
        clauses.append(sql.SQL("ts >= %s"))
        args.append(since)
    return fetch_page(
        conn,
        "alert_events",
        _EVENT_COLUMNS,
        sql.SQL(" AND ").join(clauses),
        args,
        order_by="ts DESC, id DESC",
        limit=limit,
        offset=offset,
    )


def list_deliveries(conn: psycopg.Connection, event_id: int) -> list[dict[str, Any]]:
    """The deliveries of one event (status, attempts, next attempt, last error), by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM alert_deliveries WHERE event_id = %s ORDER BY id",
            (event_id,),
        ).fetchall()


# ---------------------------------------------------------------- outbox


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken for sending, with its event and the rule's channel config."""

    id: int
    event_id: int
    channel: str
    target: str
    attempts: int  # including the one now under way
    rule_id: int
    rule: str
    symbol: str
    ts: datetime
    severity: str
    message: str
    payload: dict[str, Any]
    config: dict[str, Any]  # the rule's channel dict for (channel, target); {} if removed since


# One statement: lock due rows (skipping rows other senders hold), then either lease them
# (attempts + 1, status sending, deadline now + lease) or, for a lease that expired on the
# last allowed attempt (a sender that keeps dying on it), fail them for good.
_CLAIM: Final = """
WITH due AS (
    SELECT id, status, attempts FROM alert_deliveries
    WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), spent AS (
    SELECT id, status = 'sending' AND attempts >= %(max_attempts)s AS exhausted FROM due
), updated AS (
    UPDATE alert_deliveries d SET
        status = (CASE WHEN s.exhausted THEN 'failed' ELSE 'sending' END)::delivery_status,
        attempts = CASE WHEN s.exhausted THEN d.attempts ELSE d.attempts + 1 END,
        next_attempt_at = CASE WHEN s.exhausted THEN d.next_attempt_at
            ELSE now() + make_interval(secs => %(lease)s) END,
        last_error = CASE WHEN s.exhausted
            THEN 'the sender stopped during the last attempt (lease expired)'
            ELSE d.last_error END
    FROM spent s WHERE d.id = s.id
    RETURNING d.id, d.event_id, d.channel, d.target, d.attempts, s.exhausted
)
SELECT u.id, u.event_id, u.channel, u.target, u.attempts, e.rule_id, r.name, i.symbol,
       e.ts, e.severity, e.message, e.payload, r.channels
FROM updated u
JOIN alert_events e ON e.id = u.event_id
JOIN alert_rules r ON r.id = e.rule_id
JOIN instruments i ON i.id = e.instrument_id
WHERE NOT u.exhausted
ORDER BY u.id
"""


def _config(channels: object, kind: str, target: str) -> dict[str, Any]:
    for channel in channels if isinstance(channels, list) else []:
        if isinstance(channel, dict) and channel.get("type") == kind:
            try:
                if channel_target(channel) == target:
                    return channel
            except ValueError:
                continue
    return {}


def claim_deliveries(
    conn: psycopg.Connection,
    *,
    limit: int = 50,
    lease_seconds: float = 60.0,
    max_attempts: int = 8,
) -> list[Claimed]:
    """Due deliveries, leased to the caller for `lease_seconds` and committed as `sending`.

    Due: pending with `next_attempt_at` passed, or sending with an expired lease (its
    sender died). Concurrent callers get disjoint sets (`FOR UPDATE SKIP LOCKED`). Each
    claim counts as an attempt; an expired lease on attempt `max_attempts` fails the
    delivery instead of claiming it again.
    """
    params = {"limit": limit, "lease": float(lease_seconds), "max_attempts": max_attempts}
    with conn.transaction():
        rows = conn.execute(_CLAIM, params).fetchall()
    return [
        Claimed(
            id=int(id_),
            event_id=int(event_id),
            channel=str(channel),
            target=str(target),
            attempts=int(attempts),
            rule_id=int(rule_id),
            rule=str(rule),
            symbol=str(symbol),
            ts=ts,
            severity=str(severity),
            message=str(message),
            payload=payload if isinstance(payload, dict) else {"value": payload},
            config=_config(channels, str(channel), str(target)),
        )
        for (
            id_,
            event_id,
            channel,
            target,
            attempts,
            rule_id,
            rule,
            symbol,
            ts,
            severity,
            message,
            payload,
            channels,
        ) in rows
    ]


def mark_sent(conn: psycopg.Connection, delivery_id: int) -> bool:
    """True if the delivery is now recorded as sent (False: unknown, or sent already)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE alert_deliveries SET status = 'sent', delivered_at = now(), last_error = NULL "
            "WHERE id = %s AND status <> 'sent' RETURNING id",
            (delivery_id,),
        ).fetchone()
    return row is not None


_FAIL: Final = """
UPDATE alert_deliveries SET
    status = (CASE WHEN %(permanent)s OR attempts >= %(max_attempts)s
        THEN 'failed' ELSE 'pending' END)::delivery_status,
    next_attempt_at = CASE WHEN %(permanent)s OR attempts >= %(max_attempts)s
        THEN next_attempt_at
        ELSE now() + make_interval(secs => least(
            %(max_delay)s, %(base_delay)s * power(2.0::float8, greatest(attempts - 1, 0))
        ) * (1 + %(jitter)s * random())) END,
    last_error = left(%(error)s, 2000)
WHERE id = %(id)s AND status = 'sending'
    AND (%(attempt)s::int IS NULL OR attempts = %(attempt)s::int)
RETURNING status::text
"""


def mark_failed(
    conn: psycopg.Connection,
    delivery_id: int,
    error: str,
    *,
    max_attempts: int = 8,
    base_delay: float = 2.0,
    max_delay: float = 3600.0,
    jitter: float = 0.1,
    permanent: bool = False,
    attempt: int | None = None,
) -> Literal["pending", "failed"] | None:
    """The delivery's new status after a failed attempt: `pending` again or `failed`.

    A retry waits min(max_delay, base_delay * 2**(attempts - 1)) seconds, stretched by up to
    `jitter` (a fraction) so senders that failed together don't retry together. After
    `max_attempts` attempts, or for a `permanent` error, the delivery fails for good.
    None if the delivery was not being sent (it was sent meanwhile), or, given the claim's
    `attempt`, if its lease ran out and another sender claimed it since.
    """
    params = {
        "id": delivery_id,
        "error": error.replace("\x00", ""),
        "permanent": permanent,
        "max_attempts": max_attempts,
        "base_delay": float(base_delay),
        "max_delay": float(max_delay),
        "jitter": float(jitter),
        "attempt": attempt,
    }
    with conn.transaction():
        row = conn.execute(_FAIL, params).fetchone()
    if row is None:
        return None
    return "failed" if row[0] == "failed" else "pending"
