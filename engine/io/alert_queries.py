"""The newest bar stored when each rule was last saved: live evaluation starts after it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import psycopg

__all__ = ["saved_bars"]

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
