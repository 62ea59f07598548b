"""What a firing says: a human message and a JSON payload of the values behind it.

Firings are sparse (a handful per rule and symbol over years), so they are described row
by row in Python, where number formatting reads best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
import polars as pl

from engine.alerts.conditions import REGIME, VALUE
from engine.alerts.rules import (
    AlertRuleSpec,
    Drawdown,
    RegimeChange,
    SignalChange,
    Threshold,
    VolatilitySpike,
)
from engine.schema import CLOSE, SYMBOL, TS

__all__ = ["MESSAGE", "PAYLOAD", "describe", "iso_timestamp"]

MESSAGE: Final = "message"
PAYLOAD: Final = "payload"

RegimeNames = Mapping[str, Sequence[str]]
"""symbol -> a name per regime of one model."""

_VERBS: Final = {
    "above": "rose above",
    "below": "fell below",
    "crosses_above": "crossed above",
    "crosses_below": "crossed below",
}


def iso_timestamp(ts: datetime) -> str:
    """`ts` in ISO 8601 as Python writes it (the dedupe key's spelling)."""
    return ts.isoformat()


def _number(value: Any) -> float | None:
    """`value` as a JSON-safe float to 12 significant digits (None for null, NaN and
    infinities): rolling windows started at different bars agree to far more digits than
    that, so a live run and a backfill describe the same firing alike."""
    if value is None:
        return None
    number = float(value)
    return float(f"{number:.12g}") if math.isfinite(number) else None


def _regime_label(names: RegimeNames, symbol: str, regime: int) -> str | None:
    known = names.get(symbol, ())
    return known[regime] if 0 <= regime < len(known) else None


def _regime_change(
    cond: RegimeChange, row: Mapping[str, Any], names: RegimeNames
) -> tuple[str, dict[str, Any]]:
    symbol, regime, source = row[SYMBOL], row[REGIME], row["from_regime"]
    probability = _number(row[VALUE]) or 0.0
    name = _regime_label(names, symbol, regime)
    detail = f"{name}, p={probability:.2f}" if name else f"p={probability:.2f}"
    message = f"{symbol} entered regime {regime} ({detail}) from {source}"
    payload = {
        "model": cond.model,
        "regime": regime,
        "regime_name": name,
        "from_regime": source,
        "from_regime_name": _regime_label(names, symbol, source),
        "probability": probability,
        "confirm_bars": cond.confirm_bars,
    }
    return message, payload


def _threshold(cond: Threshold, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    value = _number(row[VALUE])
    shown = "n/a" if value is None else f"{value:.6g}"
    message = f"{row[SYMBOL]} {cond.feature} {_VERBS[cond.op]} {cond.value:g} ({shown})"
    payload = {
        "feature": cond.feature,
        "op": cond.op,
        "level": cond.value,
        "hysteresis": cond.hysteresis,
        "value": value,
    }
    return message, payload


def _drawdown(cond: Drawdown, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    depth, peak = _number(row[VALUE]) or 0.0, _number(row["peak"]) or 0.0
    window = "its peak" if cond.lookback_bars is None else f"its {cond.lookback_bars}-bar high"
    message = (
        f"{row[SYMBOL]} is {depth:.1f}% below {window} {peak:.6g} "
        f"(alert at {cond.threshold_pct:g}%)"
    )
    payload = {
        "drawdown_pct": depth,
        "threshold_pct": cond.threshold_pct,
        "peak": peak,
        "close": _number(row[CLOSE]),
        "lookback_bars": cond.lookback_bars,
    }
    return message, payload


def _volatility_spike(cond: VolatilitySpike, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    z = _number(row[VALUE]) or 0.0
    vol = _number(row["volatility"]) or 0.0
    mean = _number(row["baseline_volatility"]) or 0.0
    message = (
        f"{row[SYMBOL]} volatility spike: {cond.window}-bar volatility {vol:.1%} is "
        f"{z:.1f} standard deviations above its {cond.baseline}-bar mean {mean:.1%}"
    )
    payload = {
        "z": z,
        "threshold_z": cond.z,
        "volatility": vol,
        "baseline_volatility": mean,
        "window": cond.window,
        "baseline": cond.baseline,
    }
    return message, payload


def _signal_change(cond: SignalChange, row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    target, previous = _number(row[VALUE]) or 0.0, _number(row["previous"]) or 0.0
    message = f"{row[SYMBOL]} {cond.strategy} target changed from {previous:+.2f} to {target:+.2f}"
    payload = {"strategy": cond.strategy, "target": target, "previous_target": previous}
    return message, payload


def _describe_row(
    rule: AlertRuleSpec, row: Mapping[str, Any], names: RegimeNames
) -> tuple[str, dict[str, Any]]:
    cond = rule.condition
    if isinstance(cond, RegimeChange):
        return _regime_change(cond, row, names)
    if isinstance(cond, Threshold):
        return _threshold(cond, row)
    if isinstance(cond, Drawdown):
        return _drawdown(cond, row)
    if isinstance(cond, VolatilitySpike):
        return _volatility_spike(cond, row)
    return _signal_change(cond, row)


def describe(
    rule: AlertRuleSpec, fired: pl.DataFrame, regime_names: RegimeNames | None = None
) -> pl.DataFrame:
    """`fired` (rows of a conditions frame) plus `message` and `payload` (JSON text with the
    rule, kind, symbol, ts and the values behind the firing, keys sorted)."""
    names = regime_names or {}
    messages: list[str] = []
    payloads: list[str] = []
    for row in fired.iter_rows(named=True):
        message, values = _describe_row(rule, row, names)
        payload = {
            "rule": rule.name,
            "kind": rule.condition.__struct_config__.tag,
            "symbol": row[SYMBOL],
            "ts": iso_timestamp(row[TS]),
            **values,
        }
        messages.append(message)
        payloads.append(msgspec.json.encode(payload, order="sorted").decode())
    return fired.with_columns(
        pl.Series(MESSAGE, messages, dtype=pl.String),
        pl.Series(PAYLOAD, payloads, dtype=pl.String),
    )
