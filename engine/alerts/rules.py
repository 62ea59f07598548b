"""Alert rules: declarative msgspec specs, their validation, and their `alert_rules` rows.

A rule is a condition (a tagged union on `kind`) watched over symbols (explicit ones and/or
the configured watchlist), with where to send firings (`channels`, a tagged union on
`type`), a cooldown, optional active hours, a severity and an enabled flag.

`parse_rule` turns JSON-like data into an `AlertRuleSpec`, mapping msgspec's errors to a
`RuleError` that names the field ("condition.value", "channels[0].url").
`validate_rule` adds the checks types cannot express: known feature names, real time
zones, a symbol source, and alert targets that are public http(s) hosts (no SSRF).
`to_row` / `from_row` map a spec to and from the `alert_rules` table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from engine.errors import ConfigError
from engine.features.names import FEATURE_NAMES
from engine.io.targets import Resolver, target_problem
from engine.regimes.base import ModelName
from engine.schema import CLOSE, HIGH, LOW, OPEN, VOLUME

__all__ = [
    "BAR_COLUMNS",
    "ActiveHours",
    "AlertRuleSpec",
    "Channel",
    "Condition",
    "ConditionKind",
    "DiscordChannel",
    "Drawdown",
    "EmailChannel",
    "RegimeChange",
    "RuleError",
    "Severity",
    "SignalChange",
    "SlackChannel",
    "StreamChannel",
    "Threshold",
    "ThresholdOp",
    "VolatilitySpike",
    "WebhookChannel",
    "confirm_bars",
    "from_row",
    "parse_rule",
    "to_row",
    "validate_rule",
]

Severity = Literal["info", "warning", "critical"]
ThresholdOp = Literal["above", "below", "crosses_above", "crosses_below"]
ConditionKind = Literal[
    "regime_change", "threshold", "drawdown", "volatility_spike", "signal_change"
]

BAR_COLUMNS: Final = (CLOSE, OPEN, HIGH, LOW, VOLUME)
"""Bar columns a threshold may watch besides the named features."""

WATCHLIST_NAME: Final = "default"
"""What `alert_rules.watchlist` holds for a rule on the configured watchlist."""

_DESCRIPTION_KEY: Final = "description"
"""`alert_rules` has no description column: the text is kept in `params` under this key."""

Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Regime = Annotated[int, msgspec.Meta(ge=0, le=63)]
ConfirmBars = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]
LocalTime = Annotated[time, msgspec.Meta(tz=False)]


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every rule struct: immutable, keyword-only, unknown fields refused."""


# -- conditions ------------------------------------------------------------------------------


class RegimeChange(_Spec, frozen=True, tag_field="kind", tag="regime_change"):
    """A symbol's filtered regime (of `model`) changes from one of `from_regimes` to one of
    `to_regimes` (None: any), held with probability >= `min_probability` for
    `confirm_bars` consecutive bars; fires on the last of them."""

    model: ModelName = "hmm"
    from_regimes: Annotated[list[Regime], msgspec.Meta(min_length=1, max_length=64)] | None = None
    to_regimes: Annotated[list[Regime], msgspec.Meta(min_length=1, max_length=64)] | None = None
    min_probability: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    confirm_bars: ConfirmBars = 1


class Threshold(_Spec, frozen=True, tag_field="kind", tag="threshold"):
    """A feature (or bar column) is above/below `value`, or crosses it. After firing, the
    rule re-arms only once the feature is back past `value` -/+ `hysteresis`."""

    feature: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    op: ThresholdOp
    value: float
    hysteresis: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    confirm_bars: ConfirmBars = 1


class Drawdown(_Spec, frozen=True, tag_field="kind", tag="drawdown"):
    """The close falls more than `threshold_pct` % below its peak: the running peak, or
    the highest close of the last `lookback_bars` bars. Fires once per drawdown: it
    re-arms when the close makes a new peak."""

    threshold_pct: Annotated[float, msgspec.Meta(gt=0.0, lt=100.0)]
    lookback_bars: Annotated[int, msgspec.Meta(ge=2, le=100_000)] | None = None


class VolatilitySpike(_Spec, frozen=True, tag_field="kind", tag="volatility_spike"):
    """Realized volatility over `window` bars sits `z` or more standard deviations above
    its mean over the preceding `baseline` bars; re-arms once it is back below."""

    window: Annotated[int, msgspec.Meta(ge=2, le=1000)] = 20
    baseline: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 252
    z: Annotated[float, msgspec.Meta(gt=0.0)] = 2.0


class SignalChange(_Spec, frozen=True, tag_field="kind", tag="signal_change"):
    """The target weight of saved strategy `strategy` changes sign (including to and from
    flat), or, with `min_change` > 0, moves by at least `min_change` in one step."""

    strategy: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    min_change: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0


Condition = RegimeChange | Threshold | Drawdown | VolatilitySpike | SignalChange

# -- channels --------------------------------------------------------------------------------


class WebhookChannel(_Spec, frozen=True, tag_field="type", tag="webhook"):
    """POST the event as JSON to `url`, signed with `secret` (HMAC) when given."""

    url: Url
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None


class SlackChannel(_Spec, frozen=True, tag_field="type", tag="slack"):
    """Post to a Slack incoming-webhook `url`."""

    url: Url


class DiscordChannel(_Spec, frozen=True, tag_field="type", tag="discord"):
    """Post to a Discord webhook `url`."""

    url: Url


class EmailChannel(_Spec, frozen=True, tag_field="type", tag="email"):
    """Mail the event to `to` (1 to 20 addresses)."""

    to: Annotated[list[Email], msgspec.Meta(min_length=1, max_length=20)]


class StreamChannel(_Spec, frozen=True, tag_field="type", tag="sse"):
    """Publish the event on the API's server-sent event stream."""


Channel = WebhookChannel | SlackChannel | DiscordChannel | EmailChannel | StreamChannel
_URL_CHANNELS: Final = (WebhookChannel, SlackChannel, DiscordChannel)

# -- the rule --------------------------------------------------------------------------------


class ActiveHours(_Spec, frozen=True):
    """When a rule may fire: local times [start, end] (wrapping midnight when end < start;
    start == end means all day) on `days` (0 = Monday .. 6 = Sunday) in `timezone`. A
    window that wraps midnight belongs to the day it starts on."""

    start: LocalTime
    end: LocalTime
    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: list(range(7))
    )
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"


class AlertRuleSpec(_Spec, frozen=True):
    """Everything that defines an alert rule; `to_row` is what gets stored."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    condition: Condition
    symbols: Annotated[list[Symbol], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )
    watchlist: bool = False
    """True: also watch the configured watchlist."""
    channels: Annotated[list[Channel], msgspec.Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )
    cooldown_seconds: Annotated[int, msgspec.Meta(ge=0)] = 0
    """After a firing at bar time t, no firing for the same symbol before t + cooldown."""
    active_hours: ActiveHours | None = None
    severity: Severity = "warning"
    enabled: bool = True
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


def confirm_bars(condition: Condition) -> int:
    """Consecutive bars a condition must hold before it fires (1 for kinds without it)."""
    return condition.confirm_bars if isinstance(condition, RegimeChange | Threshold) else 1


# -- errors and parsing ----------------------------------------------------------------------


class RuleError(ConfigError, ValueError):
    """An alert rule is invalid; `field` is the dotted path of the culprit
    ("condition.feature", "channels[0].url"; "" for the rule as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


_AT_PATH: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD: Final = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]+)`")
_HH_MM: Final = re.compile(r"^\d{2}:\d{2}$")


def _rule_error(exc: msgspec.ValidationError) -> RuleError:
    """`exc` as a RuleError naming its field: "at `$.a.b[0]`" becomes "a.b[0]", and a
    missing or unknown field is appended to the path of the object that lacks or has it."""
    match = _AT_PATH.match(str(exc))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "").lstrip(".")
    named = _NAMED_FIELD.search(message)
    if named is not None:
        path = f"{path}.{named['name']}" if path else named["name"]
    return RuleError(path, message)


def _with_seconds(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """`data` with "HH:MM" active-hours times as "HH:MM:00" (RFC 3339 wants seconds)."""
    hours = data.get("active_hours")
    if not isinstance(hours, Mapping):
        return data
    padded = {
        key: f"{value}:00" if isinstance(value, str) and _HH_MM.match(value) else value
        for key, value in hours.items()
    }
    return {**data, "active_hours": padded}


def parse_rule(data: Mapping[str, Any]) -> AlertRuleSpec:
    """`data` (decoded JSON) as an AlertRuleSpec; RuleError naming the field if its shape,
    types or ranges are wrong. `validate_rule` does the checks beyond types."""
    if not isinstance(data, Mapping):
        raise RuleError("", f"a rule is an object, got {type(data).__name__}")
    try:
        return msgspec.convert(_with_seconds(data), AlertRuleSpec)
    except msgspec.ValidationError as exc:
        raise _rule_error(exc) from None


# -- validation beyond types -----------------------------------------------------------------


def _check_finite(field: str, value: float) -> None:
    if not math.isfinite(value):
        raise RuleError(field, f"must be a finite number, got {value}")


def _check_condition(condition: Condition) -> None:
    match condition:
        case Threshold():
            known = (*FEATURE_NAMES, *BAR_COLUMNS)
            if condition.feature not in known:
                raise RuleError(
                    "condition.feature",
                    f"unknown feature {condition.feature!r}; known: {', '.join(known)}",
                )
            _check_finite("condition.value", condition.value)
            _check_finite("condition.hysteresis", condition.hysteresis)
        case RegimeChange(from_regimes=[*sources], to_regimes=[*targets]):
            if set(sources) == set(targets) and len(set(sources)) == 1:
                raise RuleError(
                    "condition.to_regimes", "from and to are the same single regime: never fires"
                )
        case VolatilitySpike():
            _check_finite("condition.z", condition.z)
        case SignalChange():
            _check_finite("condition.min_change", condition.min_change)
        case _:
            pass


def _check_active_hours(hours: ActiveHours) -> None:
    try:
        ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(
            "active_hours.timezone", f"unknown time zone {hours.timezone!r} (an IANA name)"
        ) from None
    if len(set(hours.days)) != len(hours.days):
        raise RuleError("active_hours.days", "lists a day twice")


def validate_rule(
    spec: AlertRuleSpec, *, allow_private_targets: bool = False, resolve: Resolver | None = None
) -> None:
    """Nothing if `spec` can be evaluated and delivered; else RuleError naming the field.

    Checks: a symbol source (symbols or watchlist), known feature names and finite
    numbers, a real IANA time zone, and for webhook/Slack/Discord channels an http(s) URL
    whose host resolves (`resolve`, default DNS) only to public addresses, unless
    `allow_private_targets`.
    """
    if not spec.name.strip():
        raise RuleError("name", "must not be blank")
    if not spec.symbols and not spec.watchlist:
        raise RuleError("symbols", "a rule needs symbols, or watchlist: true")
    _check_condition(spec.condition)
    if spec.active_hours is not None:
        _check_active_hours(spec.active_hours)
    for index, channel in enumerate(spec.channels):
        if isinstance(channel, _URL_CHANNELS):
            problem = target_problem(
                channel.url, allow_private=allow_private_targets, resolve=resolve
            )
            if problem is not None:
                raise RuleError(f"channels[{index}].url", problem)


# -- the alert_rules table -------------------------------------------------------------------


def to_row(spec: AlertRuleSpec) -> dict[str, Any]:
    """`spec` as `alert_rules` column values (JSON columns as plain dicts and lists):
    name, kind, params, symbols, watchlist, channels, cooldown_seconds, active_hours,
    severity, enabled. The description rides in `params` (the table has no column)."""
    condition = msgspec.to_builtins(spec.condition)
    kind = condition.pop("kind")
    if spec.description is not None:
        condition[_DESCRIPTION_KEY] = spec.description
    return {
        "name": spec.name,
        "kind": kind,
        "params": condition,
        "symbols": list(spec.symbols),
        "watchlist": WATCHLIST_NAME if spec.watchlist else None,
        "channels": msgspec.to_builtins(spec.channels),
        "cooldown_seconds": spec.cooldown_seconds,
        "active_hours": msgspec.to_builtins(spec.active_hours),
        "severity": spec.severity,
        "enabled": spec.enabled,
    }


def _json(value: Any) -> Any:
    """A JSON column's value: drivers hand back decoded objects, or text."""
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


def from_row(row: Mapping[str, Any]) -> AlertRuleSpec:
    """The AlertRuleSpec an `alert_rules` row stores (extra columns such as id ignored);
    RuleError naming the field if the row no longer parses."""
    params = dict(_json(row.get("params")) or {})
    description = params.pop(_DESCRIPTION_KEY, None)
    data: dict[str, Any] = {
        "name": row["name"],
        "condition": {"kind": row["kind"], **params},
        "symbols": list(row.get("symbols") or []),
        "watchlist": row.get("watchlist") is not None,
        "channels": _json(row.get("channels")) or [],
        "cooldown_seconds": row.get("cooldown_seconds", 0),
        "active_hours": _json(row.get("active_hours")),
        "severity": row.get("severity", "warning"),
        "enabled": row.get("enabled", True),
        "description": description,
    }
    return parse_rule(data)
