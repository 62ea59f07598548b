"""Raw condition states per bar: for one rule, is its condition true on each bar of each symbol?

Each kind becomes Polars expressions evaluated per symbol (`.over(SYMBOL)`) over the whole
panel at once; no Python loop touches rows. The result is a *conditions frame*:

- `symbol`, `ts`;
- `active`: the condition holds on this bar (after hysteresis and re-arming: a threshold
  stays active through noise inside its hysteresis band, a drawdown until a new peak);
- `episode`: consecutive active bars with the same episode are one occurrence (a regime
  change into 1 and then straight into 2 are two; each signal change is its own);
- `value` and kind-specific detail columns that messages and payloads quote.

Turning states into firings (edge, confirmation, active hours, cooldown) is `firings`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from engine.alerts.rules import (
    AlertRuleSpec,
    Condition,
    Drawdown,
    RegimeChange,
    SignalChange,
    Threshold,
    VolatilitySpike,
)
from engine.features import FEATURES, FeatureName, with_features
from engine.features.pipeline import feature_names
from engine.features.volatility import realized_vol
from engine.schema import CLOSE, SYMBOL, TS

__all__ = [
    "ACTIVE",
    "EPISODE",
    "VALUE",
    "AlertInputs",
    "conditions",
    "required_features",
    "rule_symbols",
    "warmup_bars",
]

ACTIVE: Final = "active"
EPISODE: Final = "episode"
VALUE: Final = "value"
REGIME: Final = "regime"
PROBS: Final = "probs"
TARGET: Final = "target"
STRATEGY: Final = "strategy"

_HELD: Final = "_held"
_START: Final = "_start"
_RUN: Final = "_run"
_PRIOR: Final = "_prior"
_VOL: Final = "_vol"
_POSITION: Final = "_position"
_TOLERANCE: Final = 1e-12

_NO_LABELS: Final = pl.DataFrame(
    schema={
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        REGIME: pl.Int32(),
        PROBS: pl.List(pl.Float64()),
    }
)
_NO_SIGNALS: Final = pl.DataFrame(
    schema={
        STRATEGY: pl.String(),
        SYMBOL: pl.String(),
        TS: pl.Datetime("us", "UTC"),
        TARGET: pl.Float64(),
    }
)


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """What rules are evaluated on.

    `bars`: the canonical bar frame (symbol, ts, open, high, low, close, volume), possibly
    with feature columns already added. `labels`: per regime model, FILTERED (causal)
    labels symbol, ts, regime, probs. `signals`: strategy, symbol, ts, target history.
    `watchlist`: what `watchlist: true` means (None: every symbol in the inputs).
    `regime_names`: per model and symbol, a name per regime ("calm", ...) for messages.
    """

    bars: pl.DataFrame
    labels: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    signals: pl.DataFrame | None = None
    watchlist: tuple[str, ...] | None = None
    regime_names: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)


def required_features(rules: Iterable[AlertRuleSpec]) -> tuple[FeatureName, ...]:
    """The named features (of engine.features) the threshold rules among `rules` watch."""
    watched = [rule.condition for rule in rules]
    wanted = (c.feature for c in watched if isinstance(c, Threshold) and c.feature in FEATURES)
    return feature_names(wanted)


def warmup_bars(condition: Condition) -> int | None:
    """Bars of history `condition` needs before the bars it judges; None: all of it (a
    running peak depends on the whole history)."""
    bars: int | None = 2
    match condition:
        case Threshold(feature="drawdown") | Drawdown(lookback_bars=None):
            bars = None
        case Threshold():
            named = condition.feature in FEATURES
            warmup = FEATURES[feature_names(condition.feature)[0]].warmup if named else 0
            bars = warmup + condition.confirm_bars + 1
        case RegimeChange():
            bars = 2 * condition.confirm_bars + 1
        case Drawdown(lookback_bars=int(lookback)):
            bars = lookback + 1
        case VolatilitySpike():
            bars = condition.window + condition.baseline + 2
    return bars


def rule_symbols(rule: AlertRuleSpec, inputs: AlertInputs, available: pl.Series) -> list[str]:
    """The symbols `rule` watches among `available`: its own, plus the watchlist (or every
    available symbol when the inputs carry no watchlist) if it asks for it."""
    present = available.unique().sort().to_list()
    wanted = list(rule.symbols)
    if rule.watchlist:
        wanted += present if inputs.watchlist is None else inputs.watchlist
    stored = set(present)
    return [s for s in dict.fromkeys(wanted) if s in stored]


def _latched(set_: pl.Expr, reset: pl.Expr) -> pl.Expr:
    """True from each bar where `set_` holds until the next bar where `reset` holds, per
    symbol (a Schmitt trigger); False before the first of either."""
    state = pl.when(set_).then(True).when(reset).then(False).otherwise(None)
    return state.forward_fill().over(SYMBOL).fill_null(value=False)


def _panel(frame: pl.DataFrame, symbols: Sequence[str], *, presorted: bool) -> pl.LazyFrame:
    """The rows of `symbols`, sorted by symbol and ts (kept in order if `presorted`)."""
    rows = frame.lazy().filter(pl.col(SYMBOL).is_in(list(symbols)))
    return rows if presorted else rows.sort(SYMBOL, TS)


def _states(lf: pl.LazyFrame, active: pl.Expr, *details: pl.Expr | str) -> pl.DataFrame:
    """The conditions frame: symbol, ts, active, episode 0, value and `details`."""
    return lf.select(
        SYMBOL, TS, active.alias(ACTIVE), pl.lit(0, pl.Int64).alias(EPISODE), *details
    ).collect()


def _threshold(cond: Threshold, lf: pl.LazyFrame) -> pl.DataFrame:
    if cond.feature not in lf.collect_schema().names():
        lf = with_features(lf, [cond.feature], presorted=False)
    value = pl.col(cond.feature).cast(pl.Float64)
    if cond.op in ("above", "crosses_above"):
        set_, reset = value > cond.value, value <= cond.value - cond.hysteresis
    else:
        set_, reset = value < cond.value, value >= cond.value + cond.hysteresis
    active = _latched(set_, reset)
    if cond.op.startswith("crosses"):
        # a crossing needs the value seen on the other side first
        active = active & (reset.fill_null(value=False).cum_sum().over(SYMBOL) > 0)
    return _states(lf, active, value.alias(VALUE))


def _drawdown(cond: Drawdown, lf: pl.LazyFrame) -> pl.DataFrame:
    close = pl.col(CLOSE)
    if cond.lookback_bars is None:
        peak = close.cum_max()
    else:
        peak = close.rolling_max(cond.lookback_bars, min_samples=1)
    lf = lf.with_columns(peak.over(SYMBOL).alias("peak"))
    below_peak = 1.0 - close / pl.col("peak")
    # a rounding tolerance: 90 after a peak of 100 is 10 % below it, not 9.999...
    depth = cond.threshold_pct / 100.0 - _TOLERANCE
    active = _latched(below_peak >= depth, below_peak <= 0.0)
    return _states(lf, active, (below_peak * 100.0).alias(VALUE), "peak", CLOSE)


def _volatility_spike(cond: VolatilitySpike, lf: pl.LazyFrame) -> pl.DataFrame:
    lf = lf.with_columns(realized_vol(cond.window).alias(_VOL))
    # the baseline ends the bar before: a spike does not dampen its own z-score
    before = pl.col(_VOL).shift(1)
    lf = lf.with_columns(
        before.rolling_mean(cond.baseline).over(SYMBOL).alias("baseline_volatility"),
        before.rolling_std(cond.baseline).over(SYMBOL).alias("_spread"),
    )
    spread = pl.col("_spread")
    z = pl.when(spread > 0).then((pl.col(_VOL) - pl.col("baseline_volatility")) / spread)
    active = _latched(z >= cond.z, z < cond.z)
    return _states(
        lf, active, z.alias(VALUE), pl.col(_VOL).alias("volatility"), "baseline_volatility"
    )


def _regime_change(cond: RegimeChange, labels: pl.LazyFrame) -> pl.DataFrame:
    """Active through each run of a confidently held regime that differs from the regime
    confirmed before the run began (both in the rule's from/to sets). A regime is confirmed
    once held `confirm_bars` bars in a row, so a flicker shorter than that never becomes
    the reference a later run is compared with."""
    regime = pl.col(REGIME)
    probability = pl.col(PROBS).list.get(regime, null_on_oob=True)
    held = pl.when(probability >= cond.min_probability).then(regime).otherwise(-1)
    lf = (
        labels.with_columns(held.cast(pl.Int32).alias(_HELD), probability.alias(VALUE))
        .with_columns(
            (pl.col(_HELD) != pl.col(_HELD).shift(1))
            .fill_null(value=True)
            .over(SYMBOL)
            .alias(_START)
        )
        .with_columns(pl.col(_START).cum_sum().over(SYMBOL).alias(_RUN))
        .with_columns(pl.int_range(1, pl.len() + 1).over(SYMBOL, _RUN).alias(_POSITION))
    )
    is_confirmed = (pl.col(_HELD) >= 0) & (pl.col(_POSITION) >= cond.confirm_bars)
    confirmed = pl.when(is_confirmed).then(pl.col(_HELD))
    lf = lf.with_columns(confirmed.forward_fill().shift(1).over(SYMBOL).alias(_PRIOR))
    lf = lf.with_columns(pl.col(_PRIOR).first().over(SYMBOL, _RUN).alias("from_regime"))
    source, now = pl.col("from_regime"), pl.col(_HELD)
    active = (now >= 0) & source.is_not_null() & (now != source)
    if cond.to_regimes is not None:
        active = active & now.is_in(cond.to_regimes)
    if cond.from_regimes is not None:
        active = active & source.is_in(cond.from_regimes)
    return lf.select(
        SYMBOL,
        TS,
        active.fill_null(value=False).alias(ACTIVE),
        pl.col(_RUN).cast(pl.Int64).alias(EPISODE),
        VALUE,
        now.alias(REGIME),
        source,
    ).collect()


def _signal_change(cond: SignalChange, signals: pl.LazyFrame) -> pl.DataFrame:
    target = pl.col(TARGET).cast(pl.Float64)
    previous = target.shift(1).over(SYMBOL)
    changed = target.sign() != previous.sign()
    if cond.min_change > 0:
        changed = changed | ((target - previous).abs() >= cond.min_change)
    lf = (
        signals.filter(pl.col(STRATEGY) == cond.strategy)
        .with_columns(changed.fill_null(value=False).alias(ACTIVE), previous.alias("previous"))
        # every change is an occurrence of its own, even on consecutive bars
        .with_columns(pl.col(ACTIVE).cum_sum().over(SYMBOL).cast(pl.Int64).alias(EPISODE))
    )
    return lf.select(SYMBOL, TS, ACTIVE, EPISODE, target.alias(VALUE), "previous").collect()


def conditions(
    rule: AlertRuleSpec, inputs: AlertInputs, *, presorted: bool = False
) -> pl.DataFrame:
    """The conditions frame of `rule` over all its symbols and bars (see the module doc):
    symbol, ts, active, episode, value and kind-specific details, sorted by symbol, ts.
    Inputs the rule needs but `inputs` lacks (a model's labels, signals) give no rows.
    `presorted`: the inputs are already sorted by symbol, ts (`evaluate` sorts them once)."""
    cond = rule.condition
    if isinstance(cond, RegimeChange):
        source = inputs.labels.get(cond.model, _NO_LABELS)
    elif isinstance(cond, SignalChange):
        source = _NO_SIGNALS if inputs.signals is None else inputs.signals
    else:
        source = inputs.bars
    panel = _panel(source, rule_symbols(rule, inputs, source[SYMBOL]), presorted=presorted)
    if isinstance(cond, RegimeChange):
        return _regime_change(cond, panel)
    if isinstance(cond, SignalChange):
        return _signal_change(cond, panel)
    if isinstance(cond, Threshold):
        return _threshold(cond, panel)
    if isinstance(cond, Drawdown):
        return _drawdown(cond, panel)
    return _volatility_spike(cond, panel)
