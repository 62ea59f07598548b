"""First-run sample data, so `regimelab up` has real series to show."""

from __future__ import annotations

from typing import Final

from engine.ingest.pipeline import IngestResult
from engine.ingest.service import build_request, run_ingest
from engine.io.bars import count_bars
from engine.io.db import connect
from engine.settings import Settings

__all__ = ["SEED_SYMBOLS", "seed_sample_data"]

SEED_SYMBOLS: Final = ("SPX", "IXIC")


def seed_sample_data(
    settings: Settings, *, database_url: str, redis_url: str | None
) -> IngestResult | None:
    """Ingest the sample SPX and IXIC daily bars unless some are stored; None if skipped."""
    with connect(database_url, timeout=settings.connect_timeout) as conn:
        if count_bars(conn, SEED_SYMBOLS) > 0:
            return None
    request = build_request("sample", ",".join(SEED_SYMBOLS))
    return run_ingest(settings, request, database_url=database_url, redis_url=redis_url)
