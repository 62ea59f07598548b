"""Alert rules and their evaluation: pure computation, no database and no network.

`rules` holds the declarative specs (`AlertRuleSpec`, conditions, channels), their
validation (`parse_rule`, `validate_rule`, errors naming the field) and their table rows;
`evaluate` turns rules and market inputs into events (`evaluate` for live runs, `backfill`
over history). `inputs.load_alert_inputs` reads what a set of rules needs from Postgres
(through engine.io); delivery to channels lives in engine.io as well.
"""

from __future__ import annotations

from engine.alerts.evaluate import (
    EVENT_SCHEMA,
    AlertInputs,
    backfill,
    conditions,
    dedupe_key,
    evaluate,
    firings,
    required_features,
    warmup_bars,
)
from engine.alerts.inputs import load_alert_inputs, watched_symbols
from engine.alerts.rules import (
    BAR_COLUMNS,
    ActiveHours,
    AlertRuleSpec,
    Channel,
    Condition,
    DiscordChannel,
    Drawdown,
    EmailChannel,
    RegimeChange,
    RuleError,
    Severity,
    SignalChange,
    SlackChannel,
    StreamChannel,
    Threshold,
    ThresholdOp,
    VolatilitySpike,
    WebhookChannel,
    from_row,
    parse_rule,
    to_row,
    validate_rule,
)
from engine.io.targets import forbidden_reason, target_problem

__all__ = [
    "BAR_COLUMNS",
    "EVENT_SCHEMA",
    "ActiveHours",
    "AlertInputs",
    "AlertRuleSpec",
    "Channel",
    "Condition",
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
    "backfill",
    "conditions",
    "dedupe_key",
    "evaluate",
    "firings",
    "forbidden_reason",
    "from_row",
    "load_alert_inputs",
    "parse_rule",
    "required_features",
    "target_problem",
    "to_row",
    "validate_rule",
    "warmup_bars",
    "watched_symbols",
]
