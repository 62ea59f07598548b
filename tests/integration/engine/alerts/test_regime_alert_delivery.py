"""A regime switch end to end: evaluated once, recorded once, delivered once, signed."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import msgspec
import polars as pl
import psycopg
from pytest_httpserver import HTTPServer

from engine.alerts import AlertInputs, evaluate, parse_rule, to_row
from engine.io.alert_delivery import SIGNATURE_HEADER, deliver_due, verify_signature
from engine.io.alerts import insert_rule, record_events
from engine.io.bars import ensure_instruments
from engine.schema import BAR_SCHEMA, SYMBOL, TS
from engine.settings import Settings

SECRET = "regime-webhook-secret-0123"
START = datetime(2020, 1, 1, 21, tzinfo=UTC)
N_BARS, SWITCH = 300, 100


def _synthetic() -> AlertInputs:
    """SPX bars with filtered labels that switch from regime 0 to 2 at bar SWITCH."""
    ts = [START + timedelta(days=i) for i in range(N_BARS)]
    close = [100.0 + 0.01 * i for i in range(N_BARS)]
    bars = pl.DataFrame(
        {
            SYMBOL: ["SPX"] * N_BARS,
            TS: ts,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": [1_000.0] * N_BARS,
        }
    ).cast({name: dtype for name, dtype in BAR_SCHEMA.items() if name in {SYMBOL, TS}})
    path = [0] * SWITCH + [2] * (N_BARS - SWITCH)
    probs = [[0.9 if k == r else 0.05 for k in range(3)] for r in path]
    labels = pl.DataFrame({SYMBOL: ["SPX"] * N_BARS, TS: ts, "regime": path, "probs": probs})
    return AlertInputs(bars=bars, labels={"hmm": labels.cast({"regime": pl.Int32})})


def test_a_regime_switch_fires_once_and_is_delivered_signed(
    settings: Settings, httpserver: HTTPServer
) -> None:
    assert settings.database_url is not None
    open_settings = dataclasses.replace(settings, alert_allow_private_targets=True)
    spec = parse_rule(
        {
            "name": "spx-turbulent",
            "condition": {"kind": "regime_change", "to_regimes": [2], "confirm_bars": 2},
            "symbols": ["SPX"],
            "channels": [{"type": "webhook", "url": httpserver.url_for("/hook"), "secret": SECRET}],
        }
    )
    inputs = _synthetic()
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ensure_instruments(conn, [("SPX", None)], "synthetic")
        rule_id = insert_rule(conn, to_row(spec))
        channels = {rule_id: msgspec.to_builtins(spec.channels)}

        events = evaluate([(rule_id, spec)], inputs)
        first = record_events(conn, events, channels)
        again = record_events(conn, evaluate([(rule_id, spec)], inputs), channels)

    assert events.height == 1
    assert events[TS][0] == START + timedelta(days=SWITCH + 1)  # confirmed on its 2nd bar
    assert len(first) == 1 and again == []

    report = deliver_due(settings.database_url, open_settings)
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    assert deliver_due(settings.database_url, open_settings).sent == 0  # nothing left

    assert len(httpserver.log) == 1
    request, _ = httpserver.log[0]
    body = request.get_data()
    assert verify_signature(SECRET.encode(), request.headers[SIGNATURE_HEADER], body)
    delivered = json.loads(body)
    assert delivered["symbol"] == "SPX" and delivered["rule"] == "spx-turbulent"
    assert "regime 2" in delivered["message"]
