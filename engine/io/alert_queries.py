"""Reads of the alert tables for the API: a page of events filtered by severity, and the
newest bar stored when each rule was last saved (live evaluation starts after it).

They reuse `engine.io.alerts`' paging and event shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql

from engine.io.alerts import get_events, list_events
from engine.io.db import fetch_page

__all__ = ["events_page", "saved_bars"]

# Per (rule, symbol): the newest bar that was stored when the rule was last saved (bars
# keep the time they were first ingested; a re-ingest does not change it).
_SAVED_BARS: Final = """
SELECT p.rule_id, p.symbol, (
    SELECT b.ts FROM bars b
    WHERE b.instrument_id = i.id AND b.interval = %(interval)s AND b.ingested_at <= p.saved
    ORDER BY b.ts DESC LIMIT 1
)
FROM unnest(%(rule_ids)s::int[], %(symbols)s::text[], %(saved)s::timestamptz[])
    AS p(rule_id, symbol, saved)
JOIN instruments i ON i.symbol = p.symbol
"""


def saved_bars(
    conn: psycopg.Connection,
    rule_ids: Sequence[int],
    symbols: Sequence[str],
    saved: Sequence[datetime],
    *,
    interval: str = "1d",
) -> dict[tuple[int, str], datetime]:
    """(rule id, symbol) -> the newest bar of `symbol` stored at the rule's `saved` time
    (pairs given element-wise; absent when nothing was stored then)."""
    if not rule_ids:
        return {}
    rows = conn.execute(
        _SAVED_BARS,
        {
            "interval": interval,
            "rule_ids": list(rule_ids),
            "symbols": list(symbols),
            "saved": list(saved),
        },
    ).fetchall()
    return {(int(rule_id), str(symbol)): ts for rule_id, symbol, ts in rows if ts is not None}


def events_page(
    conn: psycopg.Connection,
    *,
    rule_id: int | None = None,
    symbol: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """`engine.io.alerts.list_events` with a severity filter: one page of events, newest
    bar first, and how many match in all."""
    if severity is None:
        return list_events(
            conn, rule_id=rule_id, symbol=symbol, since=since, limit=limit, offset=offset
        )
    clauses: list[sql.Composable] = [sql.SQL("severity = %s")]
    args: list[object] = [severity]
    if rule_id is not None:
        clauses.append(sql.SQL("rule_id = %s"))
        args.append(rule_id)
    if symbol is not None:
        clauses.append(sql.SQL("instrument_id IN (SELECT id FROM instruments WHERE symbol = %s)"))
        args.append(symbol)
    if since is not None:
        clauses.append(sql.SQL("ts >= %s"))
        args.append(since)
    ids, total = fetch_page(
        conn,
        "alert_events",
        "id",
        sql.SQL(" AND ").join(clauses),
        args,
        order_by="ts DESC, id DESC",
        limit=limit,
        offset=offset,
    )
    order = {row["id"]: index for index, row in enumerate(ids)}
    events = get_events(conn, list(order))
    return sorted(events, key=lambda event: order[event["id"]]), total
