"""Alert rule specs: parsing, validation errors that name their field, SSRF-safe targets,
and the round trip through an `alert_rules` row."""

from __future__ import annotations

import ipaddress
import json
from datetime import time
from typing import Any

import pytest

from engine.alerts.rules import (
    ActiveHours,
    AlertRuleSpec,
    Drawdown,
    EmailChannel,
    RegimeChange,
    RuleError,
    SignalChange,
    StreamChannel,
    Threshold,
    VolatilitySpike,
    WebhookChannel,
    from_row,
    parse_rule,
    to_row,
    validate_rule,
)
from engine.io.targets import forbidden_reason, target_problem


def public(host: str) -> list[str]:
    """A resolver that answers a public address for every host (no DNS in unit tests)."""
    return ["93.184.216.34"]


def rule(**overrides: Any) -> dict[str, Any]:
    """A valid rule as decoded JSON, with `overrides` merged in."""
    data: dict[str, Any] = {
        "name": "SPX below 50-day average",
        "condition": {"kind": "threshold", "feature": "sma_50d", "op": "below", "value": 4000},
        "symbols": ["SPX"],
        "channels": [{"type": "webhook", "url": "https://hooks.example.com/regimelab"}],
    }
    data.update(overrides)
    return data


def error_field(data: dict[str, Any], **options: Any) -> str:
    """The field named by the RuleError that parsing + validating `data` raises."""
    with pytest.raises(RuleError) as caught:
        validate_rule(parse_rule(data), resolve=options.pop("resolve", public), **options)
    assert caught.value.field in str(caught.value)
    return caught.value.field


# -- parsing -----------------------------------------------------------------------------------


def test_every_condition_kind_parses_with_its_defaults() -> None:
    kinds = {
        "regime_change": RegimeChange(),
        "threshold": Threshold(feature="close", op="above", value=1.0),
        "drawdown": Drawdown(threshold_pct=10.0),
        "volatility_spike": VolatilitySpike(),
        "signal_change": SignalChange(strategy="trend"),
    }
    for kind, expected in kinds.items():
        params = {"kind": kind}
        if kind == "threshold":
            params |= {"feature": "close", "op": "above", "value": 1}
        elif kind == "drawdown":
            params |= {"threshold_pct": 10}
        elif kind == "signal_change":
            params |= {"strategy": "trend"}
        spec = parse_rule(rule(condition=params))
        assert spec.condition == expected
    regime = parse_rule(rule(condition={"kind": "regime_change"})).condition
    assert isinstance(regime, RegimeChange)
    assert (regime.model, regime.min_probability, regime.confirm_bars) == ("hmm", 0.5, 1)


def test_a_full_rule_parses_with_channels_and_hours() -> None:
    spec = parse_rule(
        rule(
            watchlist=True,
            channels=[
                {"type": "webhook", "url": "https://example.com/h", "secret": "s3cret"},
                {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
                {"type": "discord", "url": "https://discord.com/api/webhooks/1/abc"},
                {"type": "email", "to": ["ops@example.com"]},
                {"type": "sse"},
            ],
            cooldown_seconds=3600,
            active_hours={"start": "09:30", "end": "16:00", "days": [0, 1, 2, 3, 4]},
            severity="critical",
            enabled=False,
            description="risk-off warning",
        )
    )
    assert spec.watchlist and not spec.enabled and spec.severity == "critical"
    assert spec.active_hours == ActiveHours(
        start=time(9, 30), end=time(16, 0), days=[0, 1, 2, 3, 4], timezone="UTC"
    )
    assert isinstance(spec.channels[0], WebhookChannel) and spec.channels[0].secret == "s3cret"
    assert isinstance(spec.channels[3], EmailChannel)
    assert isinstance(spec.channels[4], StreamChannel)
    validate_rule(spec, resolve=public)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"condition": {"kind": "threshold", "feature": "close", "op": "above", "value": "x"}},
         "condition.value"),
        ({"condition": {"kind": "threshold", "feature": "close", "op": "above", "value": True}},
         "condition.value"),
        ({"condition": {"kind": "threshold", "feature": "close", "op": "over", "value": 1}},
         "condition.op"),
        ({"condition": {"kind": "threshold", "op": "above", "value": 1}}, "condition.feature"),
        ({"condition": {"kind": "nope"}}, "condition.kind"),
        ({"condition": {"value": 1}}, "condition.kind"),
        ({"condition": {"kind": "drawdown", "threshold_pct": 0}}, "condition.threshold_pct"),
        ({"condition": {"kind": "drawdown", "threshold_pct": 100}}, "condition.threshold_pct"),
        ({"condition": {"kind": "drawdown", "threshold_pct": 5, "extra": 1}}, "condition.extra"),
        ({"condition": {"kind": "regime_change", "min_probability": 1.5}},
         "condition.min_probability"),
        ({"condition": {"kind": "regime_change", "confirm_bars": 0}}, "condition.confirm_bars"),
        ({"condition": {"kind": "regime_change", "model": "magic"}}, "condition.model"),
        ({"condition": {"kind": "regime_change", "to_regimes": [-1]}}, "condition.to_regimes[0]"),
        ({"condition": {"kind": "volatility_spike", "z": 0}}, "condition.z"),
        ({"condition": {"kind": "threshold", "feature": "close", "op": "above", "value": 1,
                        "hysteresis": -1}}, "condition.hysteresis"),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
        ({"cooldown_seconds": 1.5}, "cooldown_seconds"),
        ({"severity": "panic"}, "severity"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"symbols": "SPX"}, "symbols"),
        ({"symbols": [""]}, "symbols[0]"),
        ({"unknown": 1}, "unknown"),
        ({"channels": [{"type": "pager"}]}, "channels[0].type"),
        ({"channels": [{"type": "webhook"}]}, "channels[0].url"),
        ({"channels": [{"type": "email", "to": []}]}, "channels[0].to"),
        ({"channels": [{"type": "email", "to": ["not-an-address"]}]}, "channels[0].to[0]"),
        ({"channels": [{"type": "email", "to": [f"u{i}@example.com" for i in range(21)]}]},
         "channels[0].to"),
        ({"channels": [{"type": "sse"}] * 11}, "channels"),
        ({"active_hours": {"start": "25:00", "end": "16:00"}}, "active_hours.start"),
        ({"active_hours": {"start": "09:00+01:00", "end": "16:00"}}, "active_hours.start"),
        ({"active_hours": {"start": "09:00", "end": "16:00", "days": [7]}},
         "active_hours.days[0]"),
        ({"active_hours": {"end": "16:00"}}, "active_hours.start"),
    ],
)  # fmt: skip
def test_shape_and_type_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule(**overrides))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_rule_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RuleError, match="a rule is an object"):
        parse_rule([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"condition": {"kind": "threshold", "feature": "rsi_14", "op": "above", "value": 70}},
         "condition.feature", "known: log_return"),
        ({"condition": {"kind": "threshold", "feature": "close", "op": "above",
                        "value": float("nan")}}, "condition.value", "finite"),
        ({"symbols": [], "watchlist": False}, "symbols", "watchlist"),
        ({"name": "   "}, "name", "blank"),
        ({"active_hours": {"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"}},
         "active_hours.timezone", "IANA"),
        ({"active_hours": {"start": "09:00", "end": "17:00", "days": [1, 1]}},
         "active_hours.days", "twice"),
        ({"condition": {"kind": "regime_change", "from_regimes": [1], "to_regimes": [1]}},
         "condition.to_regimes", "never fires"),
        ({"channels": [{"type": "sse"}, {"type": "slack", "url": "ftp://example.com/x"}]},
         "channels[1].url", "http or https"),
        ({"channels": [{"type": "discord", "url": "https:///no-host"}]},
         "channels[0].url", "host"),
        ({"channels": [{"type": "webhook", "url": "https://user:pw@example.com/"}]},
         "channels[0].url", "credentials"),
    ],
)  # fmt: skip
def test_semantic_errors_name_the_field(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(RuleError, match=words) as caught:
        validate_rule(parse_rule(rule(**overrides)), resolve=public)
    assert caught.value.field == field


def test_bar_columns_and_every_named_feature_are_accepted() -> None:
    from engine.features.names import FEATURE_NAMES

    for feature in ("close", "open", "high", "low", "volume", *FEATURE_NAMES):
        condition = {"kind": "threshold", "feature": feature, "op": "above", "value": 0}
        validate_rule(parse_rule(rule(condition=condition)), resolve=public)


def test_a_watchlist_rule_needs_no_symbols() -> None:
    validate_rule(parse_rule(rule(symbols=[], watchlist=True)), resolve=public)


# -- SSRF --------------------------------------------------------------------------------------

FORBIDDEN_URLS = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[fd00::1]/hook",
]


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_private_and_special_addresses_are_refused(url: str) -> None:
    channels = [{"type": "webhook", "url": url}]

    def unused(host: str) -> list[str]:
        raise AssertionError("an IP literal needs no lookup")

    assert error_field(rule(channels=channels), resolve=unused) == "channels[0].url"
    if "169.254.169.254" in url or "a9fe:a9fe" in url:  # cloud metadata: never allowed
        field = error_field(rule(channels=channels), resolve=unused, allow_private_targets=True)
        assert field == "channels[0].url"
    else:
        validate_rule(parse_rule(rule(channels=channels)), allow_private_targets=True)


@pytest.mark.parametrize(
    "answer", [["10.0.0.7"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["169.254.169.254"]]
)
def test_a_host_resolving_to_any_private_address_is_refused(answer: list[str]) -> None:
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return answer

    channels = [{"type": "slack", "url": "https://hooks.internal.example/x"}]
    with pytest.raises(RuleError, match=r"hooks\.internal\.example") as caught:
        validate_rule(parse_rule(rule(channels=channels)), resolve=resolve)
    assert caught.value.field == "channels[0].url"
    assert asked == ["hooks.internal.example"]
    trusted = parse_rule(rule(channels=channels))
    if "169.254.169.254" in answer:
        with pytest.raises(RuleError, match="cloud metadata"):
            validate_rule(trusted, allow_private_targets=True, resolve=resolve)
    else:
        validate_rule(trusted, allow_private_targets=True, resolve=resolve)


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fails(host: str) -> list[str]:
        raise OSError("Name or service not known")

    channels = [{"type": "webhook", "url": "https://nowhere.invalid/"}]
    assert error_field(rule(channels=channels), resolve=fails) == "channels[0].url"
    # on a trusted private network the API host may not resolve what the sender can
    validate_rule(parse_rule(rule(channels=channels)), allow_private_targets=True, resolve=fails)


def test_public_targets_pass_and_email_and_sse_need_no_lookup() -> None:
    assert target_problem("https://hooks.example.com/x", resolve=public) is None
    assert target_problem("http://93.184.216.34:8443/x") is None
    assert target_problem("https://[2606:4700:4700::1111]/x") is None

    def unused(host: str) -> list[str]:
        raise AssertionError("no URL to check")

    channels = [{"type": "email", "to": ["a@example.com"]}, {"type": "sse"}]
    validate_rule(parse_rule(rule(channels=channels)), resolve=unused)


def test_forbidden_reason_names_the_kind_of_address() -> None:
    reasons = {
        "127.0.0.1": "loopback",
        "10.0.0.1": "private",
        "169.254.1.1": "link-local",
        "169.254.169.254": "cloud metadata",
        "fe80::1": "link-local",
        "224.0.0.1": "multicast",
        "0.0.0.0": "unspecified",
        "8.8.8.8": None,
    }
    for address, reason in reasons.items():
        assert forbidden_reason(ipaddress.ip_address(address)) == reason
    mapped = forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert mapped is not None and mapped.startswith("loopback (embedded in")
    for address in ("169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"):
        trusted = forbidden_reason(ipaddress.ip_address(address), allow_private=True)
        assert trusted == "cloud metadata"
    assert forbidden_reason(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None


# -- rows --------------------------------------------------------------------------------------


def test_a_rule_round_trips_through_its_row() -> None:
    spec = parse_rule(
        rule(
            watchlist=True,
            active_hours={"start": "22:00", "end": "02:00", "timezone": "Europe/London"},
            cooldown_seconds=900,
            description="noted",
        )
    )
    row = to_row(spec)
    assert row["kind"] == "threshold"
    assert row["params"] == {
        "feature": "sma_50d",
        "op": "below",
        "value": 4000.0,
        "hysteresis": 0.0,
        "confirm_bars": 1,
        "description": "noted",
    }
    assert row["watchlist"] == "default"
    assert row["active_hours"]["start"] == "22:00:00"
    json.dumps(row)  # every value is plain JSON
    assert from_row(row) == spec
    # the database hands JSON columns back decoded or as text; extra columns are ignored
    as_text = {**row, "params": json.dumps(row["params"]), "channels": json.dumps(row["channels"])}
    assert from_row({"id": 7, "created_at": None, **as_text}) == spec


def test_a_rule_without_watchlist_stores_null() -> None:
    spec = AlertRuleSpec(name="dd", condition=Drawdown(threshold_pct=20.0), symbols=["SPX"])
    row = to_row(spec)
    assert row["watchlist"] is None and row["active_hours"] is None
    assert from_row(row) == spec


def test_a_corrupt_row_names_the_field() -> None:
    row = to_row(parse_rule(rule()))
    row["params"] = {**row["params"], "op": "sideways"}
    with pytest.raises(RuleError) as caught:
        from_row(row)
    assert caught.value.field == "condition.op"
