"""Alert inputs from Postgres and backfills over the sample S&P 500: firing dates that
match market history (autumn 2008, May 2010, August 2011, August 2015, late 2018), regime
changes on stored HMM labels, live mode on the latest bars only, and signal history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from engine.alerts import AlertRuleSpec, backfill, evaluate, load_alert_inputs, parse_rule
from engine.io.backtests import upsert_strategy, write_signals
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import RegimeSpec
from engine.schema import SYMBOL, TS
from engine.settings import Settings

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest

START = datetime(2008, 1, 1, tzinfo=UTC)
END = datetime(2017, 12, 31, tzinfo=UTC)


def rule(condition: dict[str, Any], **options: Any) -> AlertRuleSpec:
    return parse_rule({"name": "spx", "condition": condition, "symbols": ["SPX"], **options})


def days(events: pl.DataFrame) -> list[date]:
    return [ts.date() for ts in events[TS]]


def ten_year_backfill(db: psycopg.Connection, spec: AlertRuleSpec) -> pl.DataFrame:
    """Firings of `spec` over 2008-2017, its warm-up loaded from before 2008."""
    inputs = load_alert_inputs(db, [spec], ["SPX"], start=START, end=END)
    assert inputs.bars[TS].min() < START  # warm-up history before the backfill window
    assert inputs.bars[TS].max() <= END
    return backfill(spec, inputs, start=START)


def test_backfills_over_ten_years_of_the_sample_sp500(
    db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("sample", "SPX")

    below_1000 = rule(
        {"kind": "threshold", "feature": "close", "op": "crosses_below", "value": 1000,
         "hysteresis": 50}
    )  # fmt: skip
    # Lehman autumn: the S&P 500 lost 1000 on 7 October 2008 and stayed below until 2009
    assert days(ten_year_backfill(db, below_1000)) == [date(2008, 10, 7)]

    wild = rule(
        {"kind": "threshold", "feature": "realized_vol_20d", "op": "crosses_above",
         "value": 0.4, "hysteresis": 0.1}
    )  # fmt: skip
    assert days(ten_year_backfill(db, wild)) == [
        date(2008, 9, 19), date(2009, 2, 10), date(2011, 8, 11)
    ]  # fmt: skip

    # corrections of 10 % from a one-year high: flash crash, US downgrade, China devaluation
    correction = rule({"kind": "drawdown", "threshold_pct": 10, "lookback_bars": 252})
    assert days(ten_year_backfill(db, correction)) == [
        date(2010, 5, 20), date(2011, 8, 4), date(2015, 8, 24)
    ]  # fmt: skip

    # a bear market from the running peak (October 2007): the whole history is loaded
    bear = rule({"kind": "drawdown", "threshold_pct": 20}, cooldown_seconds=86_400)
    events = ten_year_backfill(db, bear)
    assert days(events) == [date(2008, 7, 9)]
    assert events["message"][0] == "SPX is 20.5% below its peak 1565.15 (alert at 20%)"

    spikes = days(ten_year_backfill(db, rule({"kind": "volatility_spike", "z": 3.0})))
    assert date(2008, 9, 18) in spikes and date(2011, 8, 8) in spikes
    assert all(START.date() <= day <= END.date() for day in spikes)


def test_regime_changes_on_stored_hmm_labels(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("sample", "SPX")
    assert settings.database_url is not None
    run_regime_fit(settings.database_url, RegimeSpec(model="hmm", smooth=False), ["SPX"], workers=1)
    turbulent = rule(
        {"kind": "regime_change", "model": "hmm", "to_regimes": [1], "min_probability": 0.8,
         "confirm_bars": 5}
    )  # fmt: skip

    inputs = load_alert_inputs(db, [turbulent], ["SPX"], start=START, end=END)
    events = backfill(turbulent, inputs, start=START)

    assert inputs.bars.is_empty()  # a regime rule reads labels, not bars
    assert inputs.regime_names == {"hmm": {"SPX": ["calm", "turbulent"]}}
    fired = days(events)
    assert 3 <= len(fired) <= 20
    assert fired[0].year == 2008 and fired[0].month < 10  # before the Lehman autumn
    assert any((d.year, d.month) == (2011, 8) for d in fired)
    assert any((d.year, d.month) in {(2015, 8), (2015, 9)} for d in fired)
    assert all(m.startswith("SPX entered regime 1 (turbulent, p=") for m in events["message"])
    assert all(m.endswith(") from 0") for m in events["message"])
    # the same firings a second time: idempotent by dedupe key
    assert_frame_equal(backfill(turbulent, inputs, start=START), events)


def test_live_mode_reads_the_latest_bars_and_agrees_with_the_backfill(
    db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("sample", "SPX")
    rules = [
        (1, rule({"kind": "drawdown", "threshold_pct": 10, "lookback_bars": 63})),
        (2, rule({"kind": "threshold", "feature": "realized_vol_20d", "op": "crosses_above",
                  "value": 0.2, "hysteresis": 0.05})),
        (3, rule({"kind": "threshold", "feature": "sma_50d", "op": "crosses_below",
                  "value": 2800}, severity="critical")),
    ]  # fmt: skip
    since = datetime(2018, 9, 28, tzinfo=UTC)

    live_inputs = load_alert_inputs(db, rules, ["SPX"])  # 300 bars before the newest
    live = evaluate(rules, live_inputs, since=since)

    assert 300 <= live_inputs.bars.height < 320
    assert live_inputs.bars[TS].max() == datetime(2018, 12, 31, tzinfo=UTC)
    assert [(r, d) for r, d in zip(live["rule_id"], days(live), strict=True)] == [
        (2, date(2018, 10, 24)), (3, date(2018, 11, 21)), (1, date(2018, 11, 23))
    ]  # fmt: skip
    history = load_alert_inputs(db, rules, ["SPX"], start=datetime(2000, 1, 1, tzinfo=UTC))
    backfilled = evaluate(rules, history).filter(pl.col(TS) > since)
    assert_frame_equal(backfilled, live)  # payload numbers to 12 significant digits

    # evaluating the same bars again raises the same events, under the same dedupe keys
    assert_frame_equal(evaluate(rules, live_inputs, since=since), live)
    assert live["dedupe_key"][0] == "2:SPX:2018-10-24T00:00:00+00:00"


def test_signal_changes_from_stored_signal_history(db: psycopg.Connection, ingest: Ingest) -> None:
    ingest("sample", "SPX")
    strategy_id = upsert_strategy(db, "trend", "sma_crossover", {"strategy": "sma_crossover"})
    first = datetime(2018, 12, 3, tzinfo=UTC)
    targets = [0.0, 1.0, 1.0, -1.0, 0.0]
    write_signals(
        db,
        strategy_id,
        pl.DataFrame(
            {
                SYMBOL: "SPX",
                TS: [first + timedelta(days=i) for i in range(len(targets))],
                "target": targets,
            }
        ).with_columns(pl.col(TS).dt.cast_time_unit("us")),
    )
    flips = rule({"kind": "signal_change", "strategy": "trend"})

    inputs = load_alert_inputs(db, [flips], ["SPX"])

    assert inputs.signals is not None and inputs.signals.height == len(targets)
    events = backfill(flips, inputs)
    assert days(events) == [date(2018, 12, 4), date(2018, 12, 6), date(2018, 12, 7)]
    assert events["message"].to_list()[1] == "SPX trend target changed from +1.00 to -1.00"


@pytest.mark.parametrize("watchlist", [["SPX"], []])
def test_a_watchlist_rule_loads_the_watchlist(
    db: psycopg.Connection, ingest: Ingest, watchlist: list[str]
) -> None:
    ingest("sample", "SPX")
    spec = parse_rule(
        {"name": "wl", "condition": {"kind": "drawdown", "threshold_pct": 50}, "watchlist": True}
    )
    inputs = load_alert_inputs(db, [spec], watchlist, start=START, end=END)
    assert inputs.watchlist == tuple(watchlist)
    assert inputs.bars[SYMBOL].unique().to_list() == watchlist
