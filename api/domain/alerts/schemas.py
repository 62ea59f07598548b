"""Request and response types of the alert routes, and the parameters of their job.

A rule's body is the engine's `AlertRuleSpec` itself (condition and channels are tagged
unions on `kind` and `type`), so the API, the CLI and the dashboard validate one shape.
A stored rule adds its id and timestamps; webhook secrets are never read back.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from engine.alerts import AlertRuleSpec, Severity

__all__ = [
    "MAX_BACKFILL_FIRINGS",
    "MAX_BACKFILL_SYMBOLS",
    "MAX_BACKFILL_YEARS",
    "REDACTED",
    "RULE_NAME_PATTERN",
    "SYMBOL_PATTERN",
    "AlertDelivery",
    "AlertEvent",
    "AlertEventDetail",
    "AlertRule",
    "AlertRuleSpec",
    "BackfillFiring",
    "BackfillRequest",
    "BackfillResult",
    "ChannelOutcome",
    "DeliveryStatus",
    "EvaluateParams",
    "RuleTestResult",
    "Severity",
]

RULE_NAME_PATTERN: Final = r"^[^\x00-\x1f\x7f]{1,100}$"
"""Rule names as a path or query value: 1-100 characters, no control characters."""
SYMBOL_PATTERN: Final = r"^[^\s\x00-\x1f\x7f/]{1,64}$"
REDACTED: Final = "********"
"""What a stored webhook secret reads back as; sent back in a PUT, it keeps the secret."""
MAX_BACKFILL_YEARS: Final = 30
"""Longest window one backfill evaluates."""
MAX_BACKFILL_SYMBOLS: Final = 100
"""Most symbols one backfill evaluates (its own plus the watchlist)."""
MAX_BACKFILL_FIRINGS: Final = 10_000
"""Most firings one backfill lists (`count` still counts them all)."""

DeliveryStatus = Literal["pending", "sending", "sent", "failed"]
RuleName = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=RULE_NAME_PATTERN, examples=["spx-below-1000"])
]
RuleId = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class AlertRule(AlertRuleSpec, frozen=True, kw_only=True):
    """A stored rule: its spec (webhook secrets read back as `********`), id and times."""

    id: int
    created_at: datetime
    updated_at: datetime


class AlertDelivery(msgspec.Struct, kw_only=True):
    """One channel's delivery of an event (the transactional outbox row)."""

    id: int
    channel: str
    """webhook, slack, discord or email."""
    target: str
    """The URL, or the comma-separated addresses."""
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    """When a pending delivery is tried (again); a sending one's lease deadline."""
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class AlertEvent(msgspec.Struct, kw_only=True):
    """One firing of a rule on one symbol's bar."""

    id: int
    rule_id: int
    rule: str | None
    """The rule's name."""
    symbol: str | None
    ts: datetime
    """The bar the rule fired on."""
    severity: str
    message: str
    payload: dict[str, Any]
    """The values behind the firing (kind-specific), with rule, kind, symbol and ts."""
    dedupe_key: str
    """`rule_id:symbol:ts`: a bar fires a rule at most once, however often it is evaluated."""
    created_at: datetime
    """When the event was recorded."""


class AlertEventDetail(AlertEvent, kw_only=True):
    """An event with its deliveries."""

    deliveries: list[AlertDelivery]


class ChannelOutcome(msgspec.Struct, kw_only=True):
    """How a test notification went on one channel."""

    channel: str
    """webhook, slack, discord, email or sse."""
    target: str | None
    """The URL or addresses (None for the live feed)."""
    ok: bool
    detail: str
    """What happened: sent, published, or the error."""


class RuleTestResult(msgspec.Struct, kw_only=True):
    """A test notification sent through every channel of a rule."""

    rule_id: int
    rule: str
    outcomes: list[ChannelOutcome]


class BackfillRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to backfill: an unsaved `rule` or a stored `rule_id`, over [start, end]."""

    rule: AlertRuleSpec | None = None
    """A rule to try before saving it (give this or `rule_id`)."""
    rule_id: RuleId | None = None
    """A stored rule (give this or `rule`)."""
    start: date | None = None
    """First day that may fire (default: `end` minus 30 years); earlier bars are warm-up."""
    end: date | None = None
    """Last day evaluated (default: the newest bar)."""


class BackfillFiring(msgspec.Struct, kw_only=True):
    """A bar on which the rule would have fired."""

    symbol: str
    ts: datetime
    severity: str
    message: str
    payload: dict[str, Any]


class BackfillResult(msgspec.Struct, kw_only=True):
    """Every firing of a rule over history: how often would it have fired?"""

    rule: str
    symbols: list[str]
    """The symbols evaluated (those with stored data)."""
    start: date
    end: date | None
    count: int
    """All firings in the window."""
    truncated: bool
    """True when `firings` lists only the first 10,000 of `count`."""
    firings: list[BackfillFiring]
    """Oldest first."""


class EvaluateParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which rules to evaluate on the latest bars (default: every enabled rule)."""

    rules: Annotated[list[RuleName], Meta(min_length=1, max_length=1000)] | None = None
    """Names of enabled rules to evaluate (default: all of them)."""
    deliver: bool = True
    """Send the due deliveries right after recording the new events."""
