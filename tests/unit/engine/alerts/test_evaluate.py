"""Alert evaluation on synthetic frames with known switch points: edge-triggering,
confirmation, hysteresis, cooldown (within and across calls), active hours, each kind
firing where expected, deterministic dedupe keys and live mode."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

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
from engine.alerts.rules import AlertRuleSpec, parse_rule
from engine.schema import BAR_SCHEMA, SYMBOL, TS

START = datetime(2020, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def times(n: int, step: timedelta = DAY, start: datetime = START) -> list[datetime]:
    return [start + i * step for i in range(n)]


def bars(
    closes: dict[str, Sequence[float]], step: timedelta = DAY, start: datetime = START
) -> pl.DataFrame:
    """Canonical bars with the given closes (open = high = low = close)."""
    frames = []
    for symbol, close in closes.items():
        values = np.asarray(close, dtype=np.float64)
        frames.append(
            pl.DataFrame(
                {
                    SYMBOL: symbol,
                    TS: times(len(values), step, start),
                    "open": values,
                    "high": values,
                    "low": values,
                    "close": values,
                    "volume": 1.0,
                }
            )
        )
    if not frames:
        return pl.DataFrame(schema=BAR_SCHEMA)
    return pl.concat(frames).with_columns(pl.col(TS).dt.cast_time_unit("us"))


def labels(
    regimes: dict[str, Sequence[int]], confidence: Sequence[float] | None = None
) -> pl.DataFrame:
    """Filtered labels of 3 regimes: the labelled regime has probability `confidence`
    (0.83 by default), the others share the rest."""
    frames = []
    for symbol, path in regimes.items():
        p = [0.83] * len(path) if confidence is None else list(confidence)
        probs = [
            [pk if k == r else (1.0 - pk) / 2 for k in range(3)]
            for r, pk in zip(path, p, strict=True)
        ]
        frames.append(
            pl.DataFrame(
                {SYMBOL: symbol, TS: times(len(path)), "regime": list(path), "probs": probs}
            )
        )
    return pl.concat(frames).with_columns(
        pl.col(TS).dt.cast_time_unit("us"), pl.col("regime").cast(pl.Int32)
    )


def spec(condition: dict[str, Any], **options: Any) -> AlertRuleSpec:
    return parse_rule({"name": "test", "condition": condition, "symbols": ["SPX"], **options})


def fired_bars(
    events: pl.DataFrame, symbol: str = "SPX", start: datetime = START, step: timedelta = DAY
) -> list[int]:
    """Bar indices at which `symbol` fired."""
    ts = events.filter(pl.col(SYMBOL) == symbol)[TS].to_list()
    return [round((t - start) / step) for t in ts]


def switch_at(n: int, at: int, before: int = 0, after: int = 2) -> list[int]:
    return [before] * at + [after] * (n - at)


# -- regime change -------------------------------------------------------------------------------


@pytest.mark.parametrize(("confirm", "expected"), [(1, [100]), (3, [102])])
def test_a_regime_switch_fires_once_on_the_confirming_bar(
    confirm: int, expected: list[int]
) -> None:
    inputs = AlertInputs(bars=bars({}), labels={"hmm": labels({"SPX": switch_at(300, 100)})})
    rule = spec({"kind": "regime_change", "confirm_bars": confirm})

    events = backfill(rule, inputs)

    assert fired_bars(events) == expected
    assert events.schema == EVENT_SCHEMA


def test_the_message_names_the_regimes_and_the_payload_holds_the_values() -> None:
    inputs = AlertInputs(
        bars=bars({}),
        labels={"hmm": labels({"SPX": switch_at(150, 100)})},
        regime_names={"hmm": {"SPX": ["calm", "normal", "turbulent"]}},
    )
    events = backfill(spec({"kind": "regime_change"}), inputs)

    assert events["message"].to_list() == ["SPX entered regime 2 (turbulent, p=0.83) from 0"]
    payload = json.loads(events["payload"][0])
    assert payload == {
        "kind": "regime_change",
        "rule": "test",
        "symbol": "SPX",
        "ts": "2020-04-10T00:00:00+00:00",
        "model": "hmm",
        "regime": 2,
        "regime_name": "turbulent",
        "from_regime": 0,
        "from_regime_name": "calm",
        "probability": 0.83,
        "confirm_bars": 1,
    }
    unnamed = backfill(
        spec({"kind": "regime_change"}), AlertInputs(bars=bars({}), labels=inputs.labels)
    )
    assert unnamed["message"].to_list() == ["SPX entered regime 2 (p=0.83) from 0"]


def test_a_flicker_shorter_than_the_confirmation_does_not_fire_either_way() -> None:
    path = [0] * 100 + [2, 2] + [0] * 100 + [2] * 50
    inputs = AlertInputs(bars=bars({}), labels={"hmm": labels({"SPX": path})})

    assert fired_bars(backfill(spec({"kind": "regime_change", "confirm_bars": 3}), inputs)) == [204]
    # unconfirmed, the flicker fires twice: into 2 and back into 0
    assert fired_bars(backfill(spec({"kind": "regime_change"}), inputs)) == [100, 102, 202]


def test_from_to_and_probability_filters() -> None:
    path = [0] * 50 + [1] * 50 + [2] * 50 + [0] * 50
    confidence = [0.9] * 150 + [0.4] * 10 + [0.9] * 40  # the return to 0 is unsure at first
    inputs = AlertInputs(bars=bars({}), labels={"hmm": labels({"SPX": path}, confidence)})

    def fired(**condition: Any) -> list[int]:
        return fired_bars(backfill(spec({"kind": "regime_change", **condition}), inputs))

    assert fired() == [50, 100, 160]
    assert fired(to_regimes=[2]) == [100]
    assert fired(from_regimes=[2]) == [160]
    assert fired(from_regimes=[0], to_regimes=[1, 2]) == [50]
    assert fired(min_probability=0.95) == []


def test_symbols_are_independent_and_a_boundary_is_no_switch() -> None:
    # AAA ends in regime 2 and BBB starts in regime 0: sorted together, that is no change
    regimes = {"AAA": switch_at(200, 80), "BBB": switch_at(200, 120), "CCC": [0] * 200}
    inputs = AlertInputs(bars=bars({}), labels={"hmm": labels(regimes)})
    rule = parse_rule(
        {
            "name": "all",
            "condition": {"kind": "regime_change", "confirm_bars": 2},
            "watchlist": True,
        }
    )

    events = backfill(rule, inputs)

    assert fired_bars(events, "AAA") == [81]
    assert fired_bars(events, "BBB") == [121]
    assert events.height == 2


def test_a_rule_without_its_model_labels_or_signals_fires_nothing() -> None:
    inputs = AlertInputs(bars=bars({"SPX": [1.0] * 10}))
    assert backfill(spec({"kind": "regime_change", "model": "jump"}), inputs).is_empty()
    assert backfill(spec({"kind": "signal_change", "strategy": "s"}), inputs).is_empty()


# -- thresholds ----------------------------------------------------------------------------------


def noisy_crossings() -> np.ndarray:
    """Closes at 90, crossing 100 at bars 50 and 200 and chattering within +/-1 of it
    after each crossing, falling back to 90 at bar 120."""
    rng = np.random.default_rng(3)
    close = np.full(300, 90.0)
    close[50:120] = 100.0 + rng.uniform(-1.0, 1.0, 70)
    close[50] = 101.5
    close[200:] = 100.0 + rng.uniform(-1.0, 1.0, 100)
    close[200] = 101.5
    return close


def test_hysteresis_fires_once_per_real_crossing_not_on_noise() -> None:
    inputs = AlertInputs(bars=bars({"SPX": noisy_crossings()}))

    def fired(**condition: Any) -> list[int]:
        base = {"kind": "threshold", "feature": "close", "op": "crosses_above", "value": 100}
        return fired_bars(backfill(spec({**base, **condition}), inputs))

    assert fired(hysteresis=2.0) == [50, 200]
    chatter = fired()  # without hysteresis every wiggle above 100 is a new crossing
    assert len(chatter) > 10 and chatter[:1] == [50]
    assert fired(hysteresis=2.0, op="above") == [50, 200]


def test_crosses_below_with_hysteresis_and_confirmation() -> None:
    close = 200.0 - noisy_crossings()  # mirrored: crosses below 100 at bars 50 and 200
    inputs = AlertInputs(bars=bars({"SPX": close}))
    base = {"kind": "threshold", "feature": "close", "op": "crosses_below", "value": 100}

    assert fired_bars(backfill(spec({**base, "hysteresis": 2.0}), inputs)) == [50, 200]
    confirmed = backfill(spec({**base, "hysteresis": 2.0, "confirm_bars": 5}), inputs)
    assert fired_bars(confirmed) == [54, 204]
    assert "crossed below 100" in confirmed["message"][0]


def test_a_level_already_crossed_at_the_start_fires_for_above_but_not_for_crosses() -> None:
    inputs = AlertInputs(bars=bars({"SPX": [110.0] * 20 + [90.0] * 10 + [110.0] * 10}))

    def fired(op: str) -> list[int]:
        return fired_bars(
            backfill(
                spec({"kind": "threshold", "feature": "close", "op": op, "value": 100}), inputs
            )
        )

    assert fired("above") == [0, 30]
    assert fired("crosses_above") == [30]
    assert fired("below") == [20]


def test_thresholds_on_features_wait_for_their_warm_up() -> None:
    close = np.r_[np.full(60, 100.0), np.full(60, 120.0)]
    inputs = AlertInputs(bars=bars({"SPX": close}))
    rule = spec({"kind": "threshold", "feature": "sma_50d", "op": "crosses_above", "value": 110})

    assert required_features([rule]) == ("sma_50d",)
    # the 50-day mean of 100s and 120s passes 110 when 26 of the 50 bars are 120s
    assert fired_bars(backfill(rule, inputs)) == [85]


# -- drawdown and volatility ---------------------------------------------------------------------


def test_drawdown_fires_once_per_drawdown_and_rearms_at_a_new_peak() -> None:
    up = np.linspace(80, 100, 21)  # peak 100 at bar 20
    close = np.r_[up, np.linspace(99, 85, 15), np.linspace(86, 95, 10), [89.0, 88.0, 95.0],
                  np.linspace(96, 101, 6), np.linspace(100, 80, 11)]  # fmt: skip
    inputs = AlertInputs(bars=bars({"SPX": close}))
    events = backfill(spec({"kind": "drawdown", "threshold_pct": 10}), inputs)

    # 90 (bar 30) is 10 % below the peak of 100; after the new peak of 101 (bar 54), 90 at
    # bar 60 is the first close 10 % below it. The dip to 88 at bars 46-47 is the same drawdown.
    assert fired_bars(events) == [30, 60]
    message = events["message"][0]
    assert message == "SPX is 10.0% below its peak 100 (alert at 10%)"


def test_drawdown_from_a_rolling_high_forgets_old_peaks() -> None:
    # 100, a fall to 85 (88 at bar 9), flat at 85 for 20 bars, then 76: 10.6 % below 85
    close = np.r_[[100.0] * 5, np.linspace(100, 85, 6), [85.0] * 20, [76.0] * 10]
    inputs = AlertInputs(bars=bars({"SPX": close}))
    running = spec({"kind": "drawdown", "threshold_pct": 10})
    rolling = spec({"kind": "drawdown", "threshold_pct": 10, "lookback_bars": 10})

    assert fired_bars(backfill(running, inputs)) == [9]  # one drawdown from 100
    # ten flat bars later the 10-bar high is 85: re-armed, and 76 is a new drawdown
    assert fired_bars(backfill(rolling, inputs)) == [9, 31]
    assert conditions(rolling, inputs)["value"][30] == pytest.approx(0.0)


def test_a_volatility_spike_fires_on_the_jump() -> None:
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0, 0.005, 400)
    returns[320] = 0.08
    inputs = AlertInputs(bars=bars({"SPX": 100.0 * np.exp(np.cumsum(returns))}))
    rule = spec({"kind": "volatility_spike", "window": 20, "baseline": 252, "z": 3.0})

    events = backfill(rule, inputs)

    assert fired_bars(events) == [320]
    payload = json.loads(events["payload"][0])
    assert payload["z"] >= 3.0 and payload["volatility"] > payload["baseline_volatility"]
    assert warmup_bars(rule.condition) == 20 + 252 + 2


# -- signals -------------------------------------------------------------------------------------


def test_signal_changes_fire_on_each_sign_change_even_back_to_back() -> None:
    targets = [0.0, 0.0, 1.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.2, 0.9]
    signals = pl.DataFrame(
        {"strategy": "trend", SYMBOL: "SPX", TS: times(len(targets)), "target": targets}
    ).with_columns(pl.col(TS).dt.cast_time_unit("us"))
    other = signals.with_columns(pl.lit("other").alias("strategy"), -pl.col("target"))
    inputs = AlertInputs(bars=bars({}), signals=pl.concat([signals, other]))

    assert fired_bars(backfill(spec({"kind": "signal_change", "strategy": "trend"}), inputs)) == [
        2,
        5,
        6,
        8,
    ]
    big = backfill(spec({"kind": "signal_change", "strategy": "trend", "min_change": 0.5}), inputs)
    assert fired_bars(big) == [2, 4, 5, 6, 8, 9]
    assert big["message"][0] == "SPX trend target changed from +0.00 to +1.00"


# -- cooldown and active hours -------------------------------------------------------------------


def two_crossings(gap: int) -> AlertInputs:
    """Close crosses above 100 at bar 10 and again at bar 10 + gap."""
    close = np.full(10 + gap + 10, 90.0)
    close[10:15] = 110.0
    close[10 + gap :] = 110.0
    return AlertInputs(bars=bars({"SPX": close}))


CROSS = {"kind": "threshold", "feature": "close", "op": "crosses_above", "value": 100}


def test_cooldown_suppresses_a_second_firing_within_the_window_and_allows_it_after() -> None:
    inputs = two_crossings(gap=10)
    assert fired_bars(backfill(spec(CROSS), inputs)) == [10, 20]
    assert fired_bars(backfill(spec(CROSS, cooldown_seconds=15 * 86_400), inputs)) == [10]
    assert fired_bars(backfill(spec(CROSS, cooldown_seconds=10 * 86_400), inputs)) == [10, 20]
    assert fired_bars(backfill(spec(CROSS, cooldown_seconds=10 * 86_400 + 1), inputs)) == [10]


def test_a_suppressed_firing_does_not_extend_the_cooldown() -> None:
    close = np.full(40, 90.0)
    for at in (5, 12, 19):  # crossings 7 days apart, cooldown 10 days
        close[at : at + 3] = 110.0
    inputs = AlertInputs(bars=bars({"SPX": close}))
    assert fired_bars(backfill(spec(CROSS, cooldown_seconds=10 * 86_400), inputs)) == [5, 19]


def test_last_fired_carries_the_cooldown_across_calls() -> None:
    inputs = two_crossings(gap=10)
    rule = spec(CROSS, cooldown_seconds=15 * 86_400)
    first = START + 10 * DAY

    live = evaluate([(7, rule)], inputs, since=first, last_fired={(7, "SPX"): first})
    assert live.is_empty()
    other_rule = evaluate([(7, rule)], inputs, since=first, last_fired={(8, "SPX"): first})
    assert fired_bars(other_rule) == [20]
    long_ago = evaluate([(7, rule)], inputs, since=first, last_fired={(7, "SPX"): first - 6 * DAY})
    assert fired_bars(long_ago) == [20]


def test_active_hours_suppress_firings_outside_the_window() -> None:
    # hourly bars from Monday 2020-01-06 00:00 UTC; New York is UTC-5 in January
    monday, hour = datetime(2020, 1, 6, tzinfo=UTC), timedelta(hours=1)
    mon_10, mon_17, mon_23, tue_01, sat_10 = 15, 22, 28, 30, 24 * 5 + 15  # New York times
    close = np.full(24 * 7, 90.0)
    close[[mon_10, mon_17, mon_23, tue_01, sat_10]] = 110.0
    inputs = AlertInputs(bars=bars({"SPX": close}, step=hour, start=monday))

    def fired(**hours: Any) -> list[int]:
        rule = spec(CROSS, active_hours={"timezone": "America/New_York", **hours})
        return fired_bars(backfill(rule, inputs), start=monday, step=hour)

    assert fired_bars(backfill(spec(CROSS), inputs), start=monday, step=hour) == [
        mon_10, mon_17, mon_23, tue_01, sat_10
    ]  # fmt: skip
    assert fired(start="09:30", end="16:00", days=[0, 1, 2, 3, 4]) == [mon_10]
    assert fired(start="09:30", end="16:00") == [mon_10, sat_10]
    # a window across midnight belongs to the day it starts on
    assert fired(start="22:00", end="02:00", days=[0]) == [mon_23, tue_01]
    assert fired(start="22:00", end="02:00", days=[1]) == []
    assert fired(start="00:00", end="00:00", days=[5]) == [sat_10]  # all of Saturday
    assert fired(start="17:00", end="17:00", timezone="UTC", days=[2]) == []


# -- events, dedupe, live mode -------------------------------------------------------------------


def mixed_inputs() -> AlertInputs:
    close = {"SPX": noisy_crossings(), "IXIC": 200.0 - noisy_crossings()}
    return AlertInputs(
        bars=bars(close),
        labels={"hmm": labels({"SPX": switch_at(300, 100), "IXIC": switch_at(300, 150, 2, 0)})},
    )


def mixed_rules() -> list[tuple[int, AlertRuleSpec]]:
    both = ["SPX", "IXIC"]
    return [
        (1, parse_rule({"name": "up", "condition": {**CROSS, "hysteresis": 2}, "symbols": both})),
        (2, parse_rule({"name": "regime", "condition": {"kind": "regime_change"}, "symbols": both,
                        "severity": "critical"})),
        (3, parse_rule({"name": "off", "condition": CROSS, "symbols": both, "enabled": False})),
    ]  # fmt: skip


def test_evaluate_is_deterministic_and_keys_are_rule_symbol_ts() -> None:
    first = evaluate(mixed_rules(), mixed_inputs())
    second = evaluate(mixed_rules(), mixed_inputs())

    assert_frame_equal(first, second)
    assert first.schema == EVENT_SCHEMA
    assert set(first["rule_id"]) == {1, 2}  # the disabled rule is skipped
    assert first["dedupe_key"].n_unique() == first.height
    for row in first.iter_rows(named=True):
        assert row["dedupe_key"] == dedupe_key(row["rule_id"], row[SYMBOL], row[TS])
        assert row["dedupe_key"] == f"{row['rule_id']}:{row[SYMBOL]}:{row[TS].isoformat()}"
    assert first.filter(pl.col("rule_id") == 2)["severity"].unique().to_list() == ["critical"]
    assert first[TS].is_sorted()
    assert "1:SPX:2020-02-20T00:00:00+00:00" in first["dedupe_key"].to_list()


def test_dedupe_keys_spell_sub_second_times_like_isoformat() -> None:
    start = datetime(2024, 3, 1, 14, 30, 0, 250_000, tzinfo=UTC)
    close = [90.0, 110.0, 90.0, 110.0]
    frame = pl.DataFrame(
        {SYMBOL: "BTC", TS: [start + timedelta(seconds=i) for i in range(4)], "open": close,
         "high": close, "low": close, "close": close, "volume": 1.0}
    ).with_columns(pl.col(TS).dt.cast_time_unit("us"))  # fmt: skip
    rule = parse_rule({"name": "t", "condition": CROSS, "symbols": ["BTC"]})
    events = evaluate([(5, rule)], AlertInputs(bars=frame))
    assert events["dedupe_key"].to_list() == [
        f"5:BTC:{(start + timedelta(seconds=s)).isoformat()}" for s in (1, 3)
    ]
    assert events["dedupe_key"][0] == "5:BTC:2024-03-01T14:30:01.250000+00:00"


def test_backfill_equals_a_sequence_of_live_runs() -> None:
    inputs = mixed_inputs()
    rules = [(i, msgspec_replace(r, cooldown_seconds=30 * 86_400)) for i, r in mixed_rules()]
    everything = evaluate(rules, inputs)

    seen: list[pl.DataFrame] = []
    last_fired: dict[tuple[int, str], datetime] = {}
    since: datetime | None = None
    for end in range(60, 301, 60):  # five runs, each on the history up to its newest bar
        upto = START + (end - 1) * DAY
        window = AlertInputs(
            bars=inputs.bars.filter(pl.col(TS) <= upto),
            labels={m: f.filter(pl.col(TS) <= upto) for m, f in inputs.labels.items()},
        )
        new = evaluate(rules, window, since=since, last_fired=last_fired)
        assert since is None or (new[TS] > since).all()
        for row in new.iter_rows(named=True):
            last_fired[(row["rule_id"], row[SYMBOL])] = row[TS]
        seen.append(new)
        since = upto

    assert_frame_equal(pl.concat(seen).sort(TS, "rule_id", SYMBOL), everything)


def test_live_mode_returns_only_firings_after_since() -> None:
    inputs = mixed_inputs()
    all_events = evaluate(mixed_rules(), inputs)
    since = START + 120 * DAY

    live = evaluate(mixed_rules(), inputs, since=since)

    assert_frame_equal(live, all_events.filter(pl.col(TS) > since))
    assert not live.is_empty() and live.height < all_events.height


def test_firings_takes_its_settings_as_arguments() -> None:
    inputs = two_crossings(gap=10)
    rule = spec(CROSS)
    frame = conditions(rule, inputs)
    assert frame.columns[:5] == [SYMBOL, TS, "active", "episode", "value"]

    assert fired_bars(firings(rule, frame)) == [10, 20]
    assert fired_bars(firings(rule, frame, confirm_bars=5)) == [14, 24]
    assert fired_bars(firings(rule, frame, confirm_bars=6)) == [25]
    assert fired_bars(firings(rule, frame, cooldown_seconds=20 * 86_400)) == [10]
    assert fired_bars(
        firings(rule, frame, last_fired={"SPX": START + 5 * DAY}, cooldown_seconds=6 * 86_400)
    ) == [20]
    assert fired_bars(firings(rule, frame, since=START + 10 * DAY)) == [20]


def msgspec_replace(rule: AlertRuleSpec, **changes: Any) -> AlertRuleSpec:
    import msgspec

    return msgspec.structs.replace(rule, **changes)


def test_row_order_of_the_inputs_does_not_matter() -> None:
    inputs = mixed_inputs()
    shuffled = AlertInputs(
        bars=inputs.bars.sample(fraction=1.0, shuffle=True, seed=1),
        labels={m: f.sample(fraction=1.0, shuffle=True, seed=2) for m, f in inputs.labels.items()},
    )
    assert_frame_equal(evaluate(mixed_rules(), shuffled), evaluate(mixed_rules(), inputs))
    rule = mixed_rules()[0][1]
    assert_frame_equal(conditions(rule, shuffled), conditions(rule, inputs))
