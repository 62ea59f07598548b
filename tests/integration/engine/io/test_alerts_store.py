"""Alert rules, events and the delivery outbox in real Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
import pytest

from engine.io.alerts import (
    RuleExistsError,
    claim_deliveries,
    delete_rule,
    get_events,
    get_rule,
    insert_rule,
    last_fired,
    list_deliveries,
    list_events,
    list_rules,
    mark_failed,
    mark_sent,
    record_events,
    update_rule,
)
from engine.io.bars import ensure_instruments

HOOK = "https://hooks.example.com/regimelab"
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def _rule(conn: psycopg.Connection, name: str = "vol spike", **fields: Any) -> int:
    row = {"name": name, "kind": "threshold", "params": {"column": "vol", "above": 0.3}}
    return insert_rule(conn, row | fields)


def _firings(rule_id: int, bars: Sequence[tuple[str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rule_id": [rule_id] * len(bars),
            "symbol": [symbol for symbol, _ in bars],
            "ts": [ts for _, ts in bars],
            "severity": ["warning"] * len(bars),
            "message": [f"{symbol} volatility above 30%" for symbol, _ in bars],
            "payload": ['{"vol": 0.42}'] * len(bars),
            "dedupe_key": [f"{rule_id}:{symbol}:{ts.isoformat()}" for symbol, ts in bars],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection with two instruments stored (what senders use)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        ensure_instruments(connection, [("SPX", None), ("IXIC", None)], "sample")
        yield connection


def _deliveries(conn: psycopg.Connection, rule_id: int, days: int = 1) -> list[int]:
    bars = [("SPX", DAY + timedelta(days=i)) for i in range(days)]
    channels = {rule_id: [{"type": "webhook", "url": HOOK, "secret": "s" * 20}]}
    event_ids = record_events(conn, _firings(rule_id, bars), channels)
    return [d["id"] for e in event_ids for d in list_deliveries(conn, e)]


def _due_now(conn: psycopg.Connection, delivery_id: int) -> None:
    conn.execute(
        "UPDATE alert_deliveries SET next_attempt_at = now() - interval '1 second' WHERE id = %s",
        (delivery_id,),
    )


def _row(conn: psycopg.Connection, delivery_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status::text, attempts, last_error, delivered_at, "
        "extract(epoch FROM next_attempt_at - now())::float8 FROM alert_deliveries WHERE id = %s",
        (delivery_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


# ---------------------------------------------------------------- rules


def test_rules_are_stored_found_updated_listed_and_deleted(conn: psycopg.Connection) -> None:
    channels = [{"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"}]
    first = _rule(conn, symbols=["SPX"], channels=channels, cooldown_seconds=3600)
    second = _rule(conn, "trend break", enabled=False)

    stored = get_rule(conn, first)
    assert stored is not None and get_rule(conn, "vol spike") == stored
    assert stored["symbols"] == ["SPX"] and stored["channels"] == channels
    assert stored["params"] == {"column": "vol", "above": 0.3} and stored["enabled"] is True
    assert get_rule(conn, 999) is None and get_rule(conn, "absent") is None

    with pytest.raises(RuleExistsError, match="vol spike"):
        _rule(conn)
    updated = update_rule(conn, first, {"severity": "critical", "channels": []})
    assert updated is not None and updated["severity"] == "critical" and updated["channels"] == []
    assert updated["updated_at"] >= stored["updated_at"]
    with pytest.raises(RuleExistsError, match="trend break"):
        update_rule(conn, first, {"name": "trend break"})
    assert update_rule(conn, 999, {"enabled": False}) is None
    with pytest.raises(ValueError, match="unknown alert rule field"):
        update_rule(conn, first, {"owner": "me"})

    assert [r["id"] for r in list_rules(conn)[0]] == [second, first]  # by name
    assert [r["id"] for r in list_rules(conn, enabled=False)[0]] == [second]
    page, total = list_rules(conn, limit=1, offset=1)
    assert [r["id"] for r in page] == [first] and total == 2

    assert delete_rule(conn, second) and not delete_rule(conn, second)
    assert list_rules(conn)[1] == 1


# ---------------------------------------------------------------- events


def test_recording_the_same_firings_again_inserts_nothing(conn: psycopg.Connection) -> None:
    rule = _rule(conn)
    channels = {rule: [{"type": "webhook", "url": HOOK}]}
    bars = [("SPX", DAY), ("IXIC", DAY)]

    created = record_events(conn, _firings(rule, bars), channels)
    again = record_events(conn, _firings(rule, bars), channels)
    more = record_events(conn, _firings(rule, [*bars, ("SPX", DAY + timedelta(days=1))]), channels)

    assert len(created) == 2 and again == [] and len(more) == 1
    assert more[0] > max(created)
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM alert_events), (SELECT count(*) FROM alert_deliveries)"
    ).fetchone()
    assert counts == (3, 3)
    events = get_events(conn, created)
    assert [e["symbol"] for e in events] == ["SPX", "IXIC"]
    assert events[0]["rule"] == "vol spike" and events[0]["payload"] == {"vol": 0.42}
    assert events[0]["ts"] == DAY and events[0]["severity"] == "warning"


def test_each_new_event_gets_one_delivery_per_channel_except_sse(
    conn: psycopg.Connection,
) -> None:
    rule = _rule(conn)
    quiet = _rule(conn, "quiet")
    channels: dict[int, list[dict[str, Any]]] = {
        rule: [
            {"type": "webhook", "url": HOOK, "secret": None},
            {"type": "webhook", "url": HOOK, "secret": None},  # listed twice: one delivery
            {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
            {"type": "discord", "url": "https://discord.com/api/webhooks/1/x"},
            {"type": "email", "to": ["ops@example.com", "quant@example.com"]},
            {"type": "sse"},
        ],
        quiet: [{"type": "sse"}],
    }

    created = record_events(
        conn, pl.concat([_firings(rule, [("SPX", DAY)]), _firings(quiet, [("SPX", DAY)])]), channels
    )

    assert len(created) == 2
    deliveries = list_deliveries(conn, created[0])
    assert [(d["channel"], d["target"]) for d in deliveries] == [
        ("webhook", HOOK),
        ("slack", "https://hooks.slack.com/services/T/B/x"),
        ("discord", "https://discord.com/api/webhooks/1/x"),
        ("email", "ops@example.com,quant@example.com"),
    ]
    assert {(d["status"], d["attempts"], d["delivered_at"]) for d in deliveries} == {
        ("pending", 0, None)
    }
    assert list_deliveries(conn, created[1]) == []


def test_a_bad_firing_records_nothing(conn: psycopg.Connection) -> None:
    rule = _rule(conn)
    good = _firings(rule, [("SPX", DAY)])
    with pytest.raises(ValueError, match="unknown instrument"):
        record_events(conn, pl.concat([good, _firings(rule, [("NOPE", DAY)])]), {})
    with pytest.raises(ValueError, match="unknown alert channel type"):
        record_events(conn, good, {rule: [{"type": "pager", "url": HOOK}]})
    with pytest.raises(ValueError, match="lack column"):
        record_events(conn, good.drop("dedupe_key"), {})
    with pytest.raises(ValueError, match="timezone-aware"):
        record_events(conn, good.with_columns(pl.col("ts").dt.replace_time_zone(None)), {})
    assert conn.execute("SELECT count(*) FROM alert_events").fetchone() == (0,)


def test_last_fired_is_the_latest_bar_per_rule_and_symbol(conn: psycopg.Connection) -> None:
    rule, other = _rule(conn), _rule(conn, "other")
    bars = [("SPX", DAY), ("SPX", DAY + timedelta(days=2)), ("IXIC", DAY + timedelta(days=1))]
    record_events(conn, pl.concat([_firings(rule, bars), _firings(other, bars[:1])]), {})

    assert last_fired(conn, [rule]) == {
        (rule, "SPX"): DAY + timedelta(days=2),
        (rule, "IXIC"): DAY + timedelta(days=1),
    }
    assert last_fired(conn, [other, 999]) == {(other, "SPX"): DAY}
    assert last_fired(conn, []) == {}


def test_events_are_listed_newest_bar_first_with_filters(conn: psycopg.Connection) -> None:
    rule, other = _rule(conn), _rule(conn, "other")
    bars = [("SPX", DAY + timedelta(days=i)) for i in range(3)] + [("IXIC", DAY)]
    record_events(conn, pl.concat([_firings(rule, bars), _firings(other, [("SPX", DAY)])]), {})

    everything, total = list_events(conn)
    assert total == 5 and everything[0]["ts"] == DAY + timedelta(days=2)
    by_rule, total = list_events(conn, rule_id=rule, symbol="SPX", limit=2)
    assert total == 3 and [e["ts"].day for e in by_rule] == [3, 2]
    recent, total = list_events(conn, since=DAY + timedelta(days=1))
    assert total == 2 and {e["rule"] for e in recent} == {"vol spike"}
    assert list_events(conn, symbol="NOPE") == ([], 0)

    delete_rule(conn, rule)  # its events and their deliveries go with it
    assert list_events(conn)[1] == 1


# ---------------------------------------------------------------- outbox


def test_claims_carry_the_event_and_the_channel_config(conn: psycopg.Connection) -> None:
    rule = _rule(conn, channels=[{"type": "webhook", "url": HOOK, "secret": "s" * 20}])
    (delivery_id,) = _deliveries(conn, rule)

    (claimed,) = claim_deliveries(conn)

    assert claimed.id == delivery_id and claimed.attempts == 1 and claimed.channel == "webhook"
    assert (claimed.rule, claimed.symbol, claimed.ts) == ("vol spike", "SPX", DAY)
    assert claimed.payload == {"vol": 0.42} and claimed.severity == "warning"
    assert claimed.config == {"type": "webhook", "url": HOOK, "secret": "s" * 20}
    status, attempts, *_, lease_left = _row(conn, delivery_id)
    assert status == "sending" and attempts == 1 and 55 < lease_left <= 60
    assert claim_deliveries(conn) == []  # leased


def test_concurrent_claims_get_disjoint_deliveries(
    database_url: str, conn: psycopg.Connection
) -> None:
    every = set(_deliveries(conn, _rule(conn), days=5))

    with (
        psycopg.connect(database_url) as first,
        psycopg.connect(database_url, autocommit=True) as second,
    ):
        second.execute("SET lock_timeout = '2s'")  # blocking instead of skipping would fail
        with first.transaction():  # first holds its row locks, uncommitted, while second claims
            mine = {c.id for c in claim_deliveries(first, limit=3)}
            theirs = {c.id for c in claim_deliveries(second, limit=10)}
        assert claim_deliveries(first) == [] and claim_deliveries(second) == []

    assert len(mine) == 3 and len(theirs) == 2
    assert mine.isdisjoint(theirs) and mine | theirs == every


def test_an_expired_lease_is_claimed_again(conn: psycopg.Connection) -> None:
    (delivery_id,) = _deliveries(conn, _rule(conn))

    assert [c.id for c in claim_deliveries(conn, lease_seconds=0.3)] == [delivery_id]
    assert claim_deliveries(conn) == []
    time.sleep(0.4)  # the sender died: nothing marked the delivery
    (again,) = claim_deliveries(conn)

    assert again.id == delivery_id and again.attempts == 2
    assert mark_failed(conn, delivery_id, "stale sender", attempt=1) is None  # lease was lost
    assert mark_failed(conn, delivery_id, "HTTP 500", attempt=2) == "pending"


def test_an_expired_lease_on_the_last_attempt_fails_for_good(conn: psycopg.Connection) -> None:
    (delivery_id,) = _deliveries(conn, _rule(conn))

    claim_deliveries(conn, lease_seconds=0, max_attempts=2)
    claim_deliveries(conn, lease_seconds=0, max_attempts=2)
    assert claim_deliveries(conn, max_attempts=2) == []

    status, attempts, error, *_ = _row(conn, delivery_id)
    assert (status, attempts) == ("failed", 2) and "lease expired" in error


def test_failures_back_off_exponentially_up_to_the_cap(conn: psycopg.Connection) -> None:
    (delivery_id,) = _deliveries(conn, _rule(conn))
    waits = []
    for _ in range(5):
        _due_now(conn, delivery_id)
        (claimed,) = claim_deliveries(conn)
        status = mark_failed(
            conn, claimed.id, "HTTP 503", base_delay=10, max_delay=50, jitter=0, max_attempts=9
        )
        assert status == "pending"
        waits.append(_row(conn, delivery_id)[-1])

    assert waits == pytest.approx([10, 20, 40, 50, 50], abs=0.5)
    assert _row(conn, delivery_id)[:3] == ("pending", 5, "HTTP 503")

    _due_now(conn, delivery_id)
    claim_deliveries(conn)
    mark_failed(conn, delivery_id, "HTTP 503", base_delay=10, jitter=0.5, max_attempts=9)
    assert 320 - 0.5 <= _row(conn, delivery_id)[-1] <= 480 + 0.5  # 10 * 2**5, + up to 50%


def test_a_delivery_fails_for_good_after_max_attempts(conn: psycopg.Connection) -> None:
    first, second = _deliveries(conn, _rule(conn), days=2)
    statuses = []
    for _ in range(3):
        _due_now(conn, first)
        claim_deliveries(conn, limit=1)
        statuses.append(mark_failed(conn, first, "timed out", max_attempts=3, base_delay=0))

    assert statuses == ["pending", "pending", "failed"]
    _due_now(conn, first)
    assert [c.id for c in claim_deliveries(conn)] == [second]  # failed ones stay failed
    assert mark_failed(conn, second, "no such hook", permanent=True) == "failed"
    assert _row(conn, first)[:3] == ("failed", 3, "timed out")
    assert _row(conn, second)[:3] == ("failed", 1, "no such hook")


def test_a_sent_delivery_is_done(conn: psycopg.Connection) -> None:
    (delivery_id,) = _deliveries(conn, _rule(conn))
    claim_deliveries(conn)
    mark_failed(conn, delivery_id, "HTTP 500", base_delay=0)
    claim_deliveries(conn)

    assert mark_sent(conn, delivery_id) and not mark_sent(conn, delivery_id)
    assert mark_failed(conn, delivery_id, "late failure") is None  # not being sent any more
    status, attempts, error, delivered_at, _ = _row(conn, delivery_id)
    assert (status, attempts, error) == ("sent", 2, None) and delivered_at is not None
    _due_now(conn, delivery_id)
    assert claim_deliveries(conn) == []
