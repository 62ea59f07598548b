"""Live evaluation of the stored rules: new bars in, recorded and published events out.

Run by the `alerts.evaluate` job (scheduled, or on demand), at the end of the watchlist
ingest, and by `regimelab alerts check`. One pass: the enabled rules and the latest bars
they need (`load_alert_inputs`), `evaluate` over all rules and symbols at once, only the
firings on bars no earlier pass covered, `record_events` (events and their outbox
deliveries in one transaction), then publish the new events on the live feed and send the
due deliveries.

What earlier passes covered needs no state of its own: per rule and symbol, a firing
must be on a bar after (a) the newest bar stored when the rule was saved (bars remember
when they were ingested; saving or editing a rule never replays history), (b) the rule's
latest recorded firing there, and (c) the bar `LIVE_HORIZON_BARS` behind the newest, so a
symbol loaded with years of history at once only has its recent bars judged. Events are
deduplicated by key, so evaluating the same bars again records nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import polars as pl
import psycopg
import redis

from engine.alerts import (
    EVENT_SCHEMA,
    AlertInputs,
    AlertRuleSpec,
    RegimeChange,
    RuleError,
    SignalChange,
    evaluate,
    from_row,
    load_alert_inputs,
)
from engine.alerts.conditions import rule_symbols
from engine.io.alert_delivery import DeliveryReport, deliver_due
from engine.io.alert_feed import publish_events
from engine.io.alert_queries import saved_bars
from engine.io.alerts import get_events, last_fired, list_rules, record_events
from engine.io.cache import client
from engine.io.db import connect
from engine.schema import SYMBOL, TS
from engine.settings import Settings

__all__ = [
    "LIVE_HORIZON_BARS",
    "Evaluation",
    "StoredRule",
    "coverage",
    "enabled_rules",
    "evaluate_alerts",
    "event_record",
    "rule_source",
]

log = logging.getLogger(__name__)

LIVE_HORIZON_BARS: Final = 30
"""A live pass judges at most this many of a symbol's newest bars (catch-up after an
outage; a symbol whose history arrives after its rules were saved)."""
INTERVAL: Final = "1d"
"""The bars rules are evaluated on (`load_alert_inputs`' default)."""
RULE_ID: Final = "rule_id"
NEWEST: Final = "newest"
HORIZON: Final = "horizon"
CUTOFF: Final = "cutoff"
_PAGE: Final = 1000
_UTC_TIME: Final = pl.Datetime("us", "UTC")
_COVERAGE_SCHEMA: Final = pl.Schema(
    {RULE_ID: pl.Int64(), SYMBOL: pl.String(), NEWEST: _UTC_TIME, HORIZON: _UTC_TIME}
)
_NO_ROWS: Final = pl.DataFrame(schema={SYMBOL: pl.String(), TS: _UTC_TIME})


@dataclass(frozen=True, slots=True)
class StoredRule:
    """An enabled stored rule: its id, spec and when it was last saved."""

    id: int
    spec: AlertRuleSpec
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one pass did: rules and symbols judged, events recorded, published, sent."""

    rules: int
    pairs: int
    events: list[dict[str, Any]]
    published: int
    delivered: DeliveryReport | None = None
    delivery_error: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The job summary: counts, the new event ids, skipped rules and delivery outcome."""
        out: dict[str, Any] = {
            "rules": self.rules,
            "rule_symbols": self.pairs,
            "events": len(self.events),
            "event_ids": [event["id"] for event in self.events][:1000],
            "published": self.published,
        }
        if self.delivered is not None:
            out["delivered"] = {
                "sent": self.delivered.sent,
                "retried": self.delivered.retried,
                "failed": self.delivered.failed,
            }
        if self.delivery_error is not None:
            out["delivery_error"] = self.delivery_error
        if self.skipped:
            out["skipped_rules"] = self.skipped
        return out


# ---------------------------------------------------------------- rules and inputs


def enabled_rules(
    conn: psycopg.Connection, names: Iterable[str] | None = None
) -> tuple[list[StoredRule], dict[str, str]]:
    """The enabled stored rules (all, or those named), and the stored rules that no longer
    parse (name -> why): those are skipped, never fatal."""
    wanted = None if names is None else set(names)
    rules: list[StoredRule] = []
    skipped: dict[str, str] = {}
    offset = 0
    while True:
        rows, total = list_rules(conn, enabled=True, limit=_PAGE, offset=offset)
        for row in rows:
            if wanted is not None and row["name"] not in wanted:
                continue
            try:
                rules.append(StoredRule(int(row["id"]), from_row(row), row["updated_at"]))
            except RuleError as exc:
                skipped[str(row["name"])] = str(exc)
        offset += len(rows)
        if not rows or offset >= total:
            return rules, skipped


def rule_source(spec: AlertRuleSpec, inputs: AlertInputs) -> pl.DataFrame:
    """The frame a rule judges (symbol, ts, ...): bars, one model's labels, or one
    strategy's signals."""
    condition = spec.condition
    if isinstance(condition, RegimeChange):
        return inputs.labels.get(condition.model, _NO_ROWS)
    if isinstance(condition, SignalChange):
        if inputs.signals is None:
            return _NO_ROWS
        return inputs.signals.filter(pl.col("strategy") == condition.strategy)
    return inputs.bars


def _newest(frame: pl.DataFrame, symbols: Sequence[str]) -> pl.DataFrame:
    """symbol, newest ts and the ts `LIVE_HORIZON_BARS` before it (null with fewer bars)."""
    times = pl.col(TS).unique().sort(descending=True)
    return (
        frame.lazy()
        .filter(pl.col(SYMBOL).is_in(list(symbols)))
        .group_by(SYMBOL)
        .agg(
            times.first().alias(NEWEST),
            times.slice(LIVE_HORIZON_BARS, 1).first().alias(HORIZON),
        )
        .collect()
    )


def coverage(rules: Sequence[tuple[int, AlertRuleSpec]], inputs: AlertInputs) -> pl.DataFrame:
    """Per rule and symbol it watches with data: the newest bar it judges and the horizon
    of a live pass (columns rule_id, symbol, newest, horizon)."""
    frames = [pl.DataFrame(schema=_COVERAGE_SCHEMA)]
    for rule_id, spec in rules:
        source = rule_source(spec, inputs)
        symbols = rule_symbols(spec, inputs, source[SYMBOL])
        if symbols:
            frames.append(
                _newest(source, symbols).select(
                    pl.lit(rule_id, pl.Int64).alias(RULE_ID),
                    pl.col(SYMBOL).cast(pl.String),
                    pl.col(NEWEST).cast(_UTC_TIME),
                    pl.col(HORIZON).cast(_UTC_TIME),
                )
            )
    return pl.concat(frames, how="vertical")


def _saved_bars(
    conn: psycopg.Connection, pairs: pl.DataFrame, rules: Sequence[StoredRule]
) -> dict[tuple[int, str], datetime]:
    """(rule id, symbol) -> the newest bar stored when the rule was last saved."""
    saved_at = {rule.id: rule.saved_at for rule in rules}
    rule_ids = pairs[RULE_ID].to_list()
    return saved_bars(
        conn,
        rule_ids,
        pairs[SYMBOL].to_list(),
        [saved_at[rule_id] for rule_id in rule_ids],
        interval=INTERVAL,
    )


def _cutoffs(
    pairs: pl.DataFrame,
    saved: Mapping[tuple[int, str], datetime],
    fired: Mapping[tuple[int, str], datetime],
) -> pl.DataFrame:
    """`pairs` plus `cutoff`: firings must be on bars after it (null: any loaded bar)."""
    cutoffs = []
    for rule_id, symbol, horizon in pairs.select(RULE_ID, SYMBOL, HORIZON).iter_rows():
        bounds = [horizon, saved.get((rule_id, symbol)), fired.get((rule_id, symbol))]
        known = [bound.astimezone(UTC) for bound in bounds if bound is not None]
        cutoffs.append(max(known) if known else None)
    return pairs.with_columns(pl.Series(CUTOFF, cutoffs, dtype=_UTC_TIME))


# ---------------------------------------------------------------- one pass


def event_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An `alert_events` row as JSON-ready builtins: what the live feed publishes and the
    API shows."""
    payload = row.get("payload")
    record: dict[str, Any] = msgspec.to_builtins(
        {
            "id": int(row["id"]),
            "rule_id": int(row["rule_id"]),
            "rule": row.get("rule"),
            "symbol": row.get("symbol"),
            "ts": row["ts"],
            "severity": str(row["severity"]),
            "message": str(row["message"]),
            "payload": payload if isinstance(payload, dict) else {"value": payload},
            "dedupe_key": str(row["dedupe_key"]),
            "created_at": row["created_at"],
        }
    )
    return record


def _new_firings(
    rules: Sequence[tuple[int, AlertRuleSpec]],
    inputs: AlertInputs,
    cutoffs: pl.DataFrame,
    fired: Mapping[tuple[int, str], datetime],
) -> pl.DataFrame:
    """The firings on bars after each rule and symbol's cutoff (columns EVENT_SCHEMA)."""
    cut = cutoffs[CUTOFF]
    since = None if cut.is_empty() or cut.null_count() else cut.min()
    assert since is None or isinstance(since, datetime)
    events = evaluate(rules, inputs, since=since, last_fired=fired)
    return (
        events.join(cutoffs.select(RULE_ID, SYMBOL, CUTOFF), on=[RULE_ID, SYMBOL], how="left")
        .filter(pl.col(CUTOFF).is_null() | (pl.col(TS) > pl.col(CUTOFF)))
        .select(EVENT_SCHEMA.names())
    )


def _publish(settings: Settings, redis_url: str | None, events: list[dict[str, Any]]) -> int:
    if redis_url is None or not events:
        return 0
    redis_client: redis.Redis = client(redis_url, timeout=settings.connect_timeout)
    try:
        return publish_events(redis_client, settings.cache_prefix, events)
    finally:
        redis_client.close()


def _deliver(settings: Settings, database_url: str) -> tuple[DeliveryReport | None, str | None]:
    try:
        return deliver_due(database_url, settings), None
    except Exception as exc:  # the API's delivery loop retries; the events are safe
        log.warning("alert delivery after evaluation failed: %s", exc)
        lines = str(exc).strip().splitlines()
        return None, lines[0] if lines else type(exc).__name__


def evaluate_alerts(
    settings: Settings,
    database_url: str,
    redis_url: str | None,
    *,
    rules: Sequence[str] | None = None,
    deliver: bool = True,
) -> Evaluation:
    """Evaluate the enabled rules (all, or those named) on the latest bars; record, publish
    and (with `deliver`) send the events of bars no earlier pass covered."""
    with connect(database_url, timeout=settings.connect_timeout, autocommit=True) as conn:
        stored, skipped = enabled_rules(conn, rules)
        specs = [(rule.id, rule.spec) for rule in stored]
        inputs = load_alert_inputs(conn, specs, settings.watchlist)
        pairs = coverage(specs, inputs)
        saved = _saved_bars(conn, pairs, stored)
        fired = last_fired(conn, [rule.id for rule in stored]) if stored else {}
        firings = _new_firings(specs, inputs, _cutoffs(pairs, saved, fired), fired)
        channels = {rule.id: msgspec.to_builtins(rule.spec.channels) for rule in stored}
        event_ids = record_events(conn, firings, channels)  # commits events and outbox
        events = [event_record(row) for row in get_events(conn, event_ids)]
    published = _publish(settings, redis_url, events)  # after the commit: readers find them
    delivered, error = _deliver(settings, database_url) if deliver else (None, None)
    return Evaluation(
        rules=len(stored),
        pairs=pairs.height,
        events=events,
        published=published,
        delivered=delivered,
        delivery_error=error,
        skipped=skipped,
    )
