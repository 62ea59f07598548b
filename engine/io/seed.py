"""First-run sample data, so `regimelab up` has real series to show."""

from __future__ import annotations

import logging
from typing import Final

from engine.io.bars import count_bars, ensure_instruments, upsert_bars
from engine.io.db import connect
from engine.providers import sample

__all__ = ["SEED_SYMBOLS", "seed_sample_data"]

log = logging.getLogger(__name__)

SEED_SYMBOLS: Final = ["SPX", "IXIC"]


def seed_sample_data(database_url: str, *, timeout: float = 5.0) -> int:
    """Load the sample SPX and IXIC daily bars unless present; returns bars written."""
    with connect(database_url, timeout=timeout) as conn:
        if count_bars(conn, SEED_SYMBOLS) > 0:
            return 0
        frame = sample.fetch_bars(SEED_SYMBOLS)
        with conn.transaction():
            ids = ensure_instruments(
                conn,
                ((s, sample.SAMPLE_SYMBOLS[s][1]) for s in SEED_SYMBOLS),
                "sample",
                sample.PROVIDER.calendar,
            )
            written = upsert_bars(conn, frame, ids, provider="sample")
    log.info("seeded %d sample bars", written)
    return written
