"""Alert evaluation: which rules fire, on which symbol, at which bar; pure, no I/O.

From a rule's conditions frame (`conditions`: is the condition true on each bar) to its
firings (`firings`), then to events (`evaluate`, `backfill`):

- edge-triggered: a firing is a state transition, the bar at which the condition became
  true (or a new occurrence began), never every bar it stays true;
- confirmation: the condition must hold `confirm_bars` bars in a row; it fires on the last;
- active hours: firings whose bar time, in the rule's time zone, falls outside the window
  are dropped (they do not start a cooldown either);
- cooldown: after a firing at bar time t, the same rule and symbol do not fire before
  t + cooldown. Time is bar time, not wall-clock time, so a backfill and a sequence of
  live runs agree. `last_fired` carries the latest firing of earlier runs.

Live mode passes `since` (the newest bar already evaluated): conditions are computed over
all the history given (indicators and confirmation need it), but only firings after
`since` count, and only they start cooldowns. Each event has a deterministic dedupe key
`rule_id:symbol:ts`, so evaluating the same bars twice yields the same events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import polars as pl

from engine.alerts.conditions import (
    ACTIVE,
    EPISODE,
    AlertInputs,
    conditions,
    required_features,
    warmup_bars,
)
from engine.alerts.messages import MESSAGE, PAYLOAD, describe
from engine.alerts.rules import ActiveHours, AlertRuleSpec, RegimeChange, confirm_bars
from engine.features import with_features
from engine.schema import SYMBOL, TS

__all__ = [
    "EVENT_SCHEMA",
    "AlertInputs",
    "backfill",
    "conditions",
    "dedupe_key",
    "evaluate",
    "firings",
    "required_features",
    "warmup_bars",
]

RULE_ID: Final = "rule_id"
SEVERITY: Final = "severity"
DEDUPE_KEY: Final = "dedupe_key"

EVENT_SCHEMA: Final = pl.Schema(
    {
        RULE_ID: pl.Int64(),
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        SEVERITY: pl.String(),
        MESSAGE: pl.String(),
        PAYLOAD: pl.String(),
        DEDUPE_KEY: pl.String(),
    }
)
"""The columns of `evaluate` and `backfill`: one row per event, an `alert_events` row."""


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive datetime is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def dedupe_key(rule_id: int, symbol: str, ts: datetime) -> str:
    """The event's idempotency key: "rule_id:symbol:ts" with ts in ISO 8601, UTC."""
    return f"{rule_id}:{symbol}:{_utc(ts).isoformat()}"


def _dedupe_key_expr(rule_id: pl.Expr) -> pl.Expr:
    """`dedupe_key` as an expression; ts spelled as Python's isoformat() spells it."""
    ts = pl.col(TS).dt.convert_time_zone("UTC")
    whole = ts.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    fraction = ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
    iso = pl.when(ts.dt.microsecond() == 0).then(whole).otherwise(fraction)
    return pl.concat_str(rule_id.cast(pl.String), pl.col(SYMBOL), iso, separator=":")


def _candidates(frame: pl.DataFrame, confirm: int) -> pl.DataFrame:
    """The rows of a conditions frame (sorted by symbol, ts) where an occurrence reaches
    `confirm` bars: the condition has held that many bars in a row since it became true
    (or since a new episode began).

    Computed on the whole sorted column at once, with symbol boundaries masked, rather
    than `.over(SYMBOL)`: no hashing of symbol strings on this per-bar path."""
    symbol, active, episode = pl.col(SYMBOL), pl.col(ACTIVE), pl.col(EPISODE)
    first_of_symbol = (symbol != symbol.shift(1)).fill_null(value=True)
    continues = active.shift(1).fill_null(value=False) & (episode == episode.shift(1))
    begins = active & (first_of_symbol | ~continues.fill_null(value=False))
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    bars_held = row - pl.when(begins).then(row).forward_fill() + 1
    return frame.filter(active & (bars_held == confirm))


def _within_hours(hours: ActiveHours) -> pl.Expr:
    """True for bars whose local time (in `hours.timezone`) falls in the window."""
    local = pl.col(TS).dt.convert_time_zone(hours.timezone)
    clock, weekday = local.dt.time(), local.dt.weekday().cast(pl.Int32) - 1  # 0 = Monday
    start, end = pl.lit(hours.start), pl.lit(hours.end)
    if hours.start == hours.end:
        return weekday.is_in(hours.days)
    if hours.start < hours.end:
        return (clock >= start) & (clock <= end) & weekday.is_in(hours.days)
    # wraps midnight: the early-morning part belongs to the previous day's window
    evening, morning = clock >= start, clock <= end
    day = pl.when(morning).then((weekday + 6) % 7).otherwise(weekday)
    return (evening | morning) & day.is_in(hours.days)


def _cooled(
    candidates: pl.DataFrame, cooldown: timedelta, last_fired: Mapping[str, datetime]
) -> pl.DataFrame:
    """`candidates` (sorted by symbol, ts) without those within `cooldown` after an
    earlier firing of the same symbol (this pass's or `last_fired`'s). Path-dependent, so
    a loop, but over sparse candidates only."""
    if cooldown <= timedelta(0) or candidates.is_empty():
        return candidates
    keep: list[bool] = []
    current: str | None = None
    seed: datetime | None = None
    previous: datetime | None = None
    for symbol, ts in zip(candidates[SYMBOL], candidates[TS], strict=True):
        if symbol != current:
            current, previous = symbol, None
            seed = _utc(last_fired[symbol]) if symbol in last_fired else None
        blocked = any(f is not None and f <= ts < f + cooldown for f in (seed, previous))
        keep.append(not blocked)
        if not blocked:
            previous = ts
    return candidates.filter(pl.Series(keep, dtype=pl.Boolean))


def firings(
    rule: AlertRuleSpec,
    frame: pl.DataFrame,
    *,
    cooldown_seconds: int = 0,
    active_hours: ActiveHours | None = None,
    confirm_bars: int = 1,
    last_fired: Mapping[str, datetime] | None = None,
    since: datetime | None = None,
    regime_names: Mapping[str, Sequence[str]] | None = None,
) -> pl.DataFrame:
    """The bars at which `rule` fires, from its conditions frame `frame` (each symbol's
    rows together and in time order, as `conditions` returns them): the frame's rows there
    plus `message` and `payload`.

    Edge-triggered with confirmation (`confirm_bars`), then only bars after `since`, inside
    `active_hours`, and outside the cooldown of an earlier firing (this call's, or
    `last_fired`: symbol -> the rule's latest firing before this call).
    `evaluate` passes the rule's own settings.
    """
    fired = _candidates(frame, confirm_bars)
    if since is not None:
        fired = fired.filter(pl.col(TS) > _utc(since))
    if active_hours is not None:
        fired = fired.filter(_within_hours(active_hours))
    fired = _cooled(fired, timedelta(seconds=cooldown_seconds), last_fired or {})
    return describe(rule, fired, regime_names)


def _prepared(inputs: AlertInputs, rules: Sequence[AlertRuleSpec]) -> AlertInputs:
    """`inputs` sorted by symbol and ts once for all rules, with the features `rules`
    watch computed once, as bar columns."""
    missing = [n for n in required_features(rules) if n not in inputs.bars.columns]
    bars = inputs.bars.sort(SYMBOL, TS)
    if missing:
        bars = with_features(bars.lazy(), missing, presorted=False).collect()
    signals = None if inputs.signals is None else inputs.signals.sort(SYMBOL, TS)
    labels = {model: frame.sort(SYMBOL, TS) for model, frame in inputs.labels.items()}
    return dataclasses.replace(inputs, bars=bars, labels=labels, signals=signals)


def _events(rule_id: int, rule: AlertRuleSpec, fired: pl.DataFrame) -> pl.DataFrame:
    return fired.select(
        pl.lit(rule_id, pl.Int64).alias(RULE_ID),
        SYMBOL,
        TS,
        pl.lit(rule.severity).alias(SEVERITY),
        MESSAGE,
        PAYLOAD,
        _dedupe_key_expr(pl.lit(rule_id, pl.Int64)).alias(DEDUPE_KEY),
    )


def _rule_events(
    rule_id: int,
    rule: AlertRuleSpec,
    inputs: AlertInputs,
    *,
    since: datetime | None,
    last_fired: Mapping[str, datetime],
) -> pl.DataFrame:
    names = None
    if isinstance(rule.condition, RegimeChange):
        names = inputs.regime_names.get(rule.condition.model)
    fired = firings(
        rule,
        conditions(rule, inputs, presorted=True),
        cooldown_seconds=rule.cooldown_seconds,
        active_hours=rule.active_hours,
        confirm_bars=confirm_bars(rule.condition),
        last_fired=last_fired,
        since=since,
        regime_names=names,
    )
    return _events(rule_id, rule, fired)


def evaluate(
    rules: Sequence[tuple[int, AlertRuleSpec]],
    inputs: AlertInputs,
    *,
    since: datetime | None = None,
    last_fired: Mapping[tuple[int, str], datetime] | None = None,
) -> pl.DataFrame:
    """Events of the enabled `rules` (rule id, spec) on `inputs` (columns `EVENT_SCHEMA`),
    sorted by ts, rule_id, symbol.

    `since`: only firings on bars after it (live mode; None: all history). `last_fired`:
    (rule id, symbol) -> latest earlier firing, so cooldowns span calls.
    """
    enabled = [(rule_id, rule) for rule_id, rule in rules if rule.enabled]
    inputs = _prepared(inputs, [rule for _, rule in enabled])
    previous = last_fired or {}
    frames = [
        _rule_events(
            rule_id,
            rule,
            inputs,
            since=since,
            last_fired={s: t for (r, s), t in previous.items() if r == rule_id},
        )
        for rule_id, rule in enabled
    ]
    events = pl.concat([pl.DataFrame(schema=EVENT_SCHEMA), *frames], how="vertical")
    return events.sort(TS, RULE_ID, SYMBOL)


def backfill(
    spec: AlertRuleSpec, inputs: AlertInputs, *, start: datetime | None = None
) -> pl.DataFrame:
    """Every event `spec` would have raised over the history in `inputs` (rule_id 0,
    columns `EVENT_SCHEMA`, oldest first), whether or not it is enabled: "how often would
    this have fired?". `start`: only firings from then on; the bars before it are warm-up."""
    since = None if start is None else _utc(start) - timedelta(microseconds=1)
    return evaluate([(0, msgspec.structs.replace(spec, enabled=True))], inputs, since=since)
