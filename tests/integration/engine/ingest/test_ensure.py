"""Notebook bar loading: ingest only what is missing, then read stored bars."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.ingest.coverage import cache_hit_rates
from engine.ingest.ensure import (
    ensure_bars,
    load_research_bars,
    resolve_symbols,
    stored_or_sample_symbols,
)
from engine.io.quality import instrument_calendars, recent_ingest_runs, stored_symbols
from engine.io.session import ResearchSession, close_sessions, open_session
from engine.settings import Settings


@pytest.fixture
def session(settings: Settings) -> Iterator[ResearchSession]:
    yield open_session(settings)
    close_sessions()


def test_ensure_bars_ingests_only_symbols_without_bars(session: ResearchSession) -> None:
    first = ensure_bars(session, "sample", ("SPX",))
    assert first is not None and first.status == "succeeded"
    assert ensure_bars(session, "sample", ("SPX",)) is None  # stored: nothing fetched
    second = ensure_bars(session, "synthetic", resolve_symbols("synthetic", "2"))
    assert second is not None and second.symbols == 2
    bars = load_research_bars(session, ["SPX", "SYN0000"])
    assert set(bars["symbol"]) == {"SPX", "SYN0000"}
    with session.connect() as conn:
        assert stored_symbols(conn) == ["SPX", "SYN0000", "SYN0001"]
        assert instrument_calendars(conn, ["SPX", "SYN0000", "NOPE"]) == {
            "SPX": "XNYS",
            "SYN0000": None,
        }
        runs = recent_ingest_runs(conn)
    assert [run["provider"] for run in runs] == ["synthetic", "sample"]  # newest first
    rates = cache_hit_rates(runs)
    assert rates["calls"].to_list() == [1, 1]


def test_resolve_symbols_reads_the_providers_spelling() -> None:
    assert resolve_symbols("synthetic", "3") == ("SYN0000", "SYN0001", "SYN0002")
    assert resolve_symbols("sample", " SPX, IXIC,SPX") == ("SPX", "IXIC")
    assert resolve_symbols("sample", " ") == ()


def test_an_empty_database_gets_the_sample_series_once(session: ResearchSession) -> None:
    assert stored_or_sample_symbols(session) == ["IXIC", "SPX"]
    ensure_bars(session, "synthetic", resolve_symbols("synthetic", "1"))
    assert stored_or_sample_symbols(session) == ["IXIC", "SPX", "SYN0000"]  # nothing reloaded
    with session.connect() as conn:
        runs = recent_ingest_runs(conn)
    assert [run["provider"] for run in runs] == ["synthetic", "sample"]
