"""Bars a notebook asks for: read what is stored, ingest only the symbols that have none.

A research notebook names a provider and symbols; on a fresh embedded database nothing is
stored yet, so the first run loads them through the ordinary ingest path (cache, quality
checks, an `ingest_runs` row). Symbols that already have bars are left alone: re-running a
notebook never refetches history (`regimelab ingest` does incremental updates).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from engine.ingest.pipeline import IngestResult, Progress
from engine.ingest.service import build_request, run_ingest
from engine.io.bars import last_bar_times, load_bars
from engine.io.session import ResearchSession
from engine.providers.registry import get_provider

__all__ = ["ensure_bars", "load_research_bars", "resolve_symbols", "stored_or_sample_symbols"]


def resolve_symbols(provider: str, text: str) -> tuple[str, ...]:
    """The symbols `text` names for `provider` (comma-separated; synthetic also takes a count,
    "3" = SYN0000..SYN0002), de-duplicated in order."""
    if not text.strip():
        return ()
    return tuple(dict.fromkeys(get_provider(provider).resolve_symbols(text)))


def ensure_bars(
    session: ResearchSession,
    provider: str,
    symbols: Sequence[str],
    *,
    interval: str = "1d",
    progress: Progress | None = None,
) -> IngestResult | None:
    """Ingest from `provider` the `symbols` with no stored `interval` bars; None if every
    symbol already has some (nothing is fetched then)."""
    with session.connect() as conn:
        stored = last_bar_times(conn, symbols, interval)
    missing = [symbol for symbol in symbols if symbol not in stored]
    if not missing:
        return None
    request = build_request(provider, ",".join(missing), interval=interval)
    return run_ingest(
        session.settings,
        request,
        database_url=session.database_url,
        redis_url=session.redis_url,
        progress=progress,
    )


def load_research_bars(
    session: ResearchSession,
    symbols: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str = "1d",
) -> pl.DataFrame:
    """Stored canonical bars of `symbols` in [start, end] (see `engine.io.bars.load_bars`)."""
    with session.connect() as conn:
        return load_bars(conn, symbols, start=start, end=end, interval=interval)


def stored_or_sample_symbols(session: ResearchSession) -> list[str]:
    """Every symbol with stored bars; on an empty database the sample series (SPX, IXIC)
    are loaded first, as `regimelab up` does."""
    from engine.ingest.seed import seed_sample_data
    from engine.io.quality import stored_symbols

    with session.connect() as conn:
        stored = stored_symbols(conn)
    if stored:
        return stored
    seed_sample_data(
        session.settings, database_url=session.database_url, redis_url=session.redis_url
    )
    with session.connect() as conn:
        return stored_symbols(conn)
