"""Jobs of this domain: one ingest, and the scheduled incremental load of the watchlist."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from api.domain.ingest.schemas import IngestParams, WatchlistParams
from api.lib.jobs import JobContext, job, public_error
from engine.alerts.runs import evaluate_alerts
from engine.ingest.pipeline import IngestError, IngestRequest, IngestResult
from engine.ingest.service import run_ingest
from engine.io.bars import instrument_providers
from engine.io.db import connect

__all__ = ["ingest", "ingest_watchlist", "summary"]


def summary(results: Iterable[IngestResult], providers: Iterable[str]) -> dict[str, Any]:
    """Rows fetched, upserted and rejected over `results`, and provider calls per cache
    outcome (`provider_calls: {provider: {outcome: count}}`, counted into metrics)."""
    totals = {"rows_fetched": 0, "rows_upserted": 0, "rows_rejected": 0}
    calls: dict[str, dict[str, int]] = {}
    for result, provider in zip(results, providers, strict=True):
        totals["rows_fetched"] += result.rows_fetched
        totals["rows_upserted"] += result.rows_upserted
        totals["rows_rejected"] += result.rows_rejected
        outcomes = calls.setdefault(provider, {})
        for outcome, count in result.cache.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return {**totals, "provider_calls": calls}


@job("ingest", params=IngestParams)
def ingest(ctx: JobContext, params: IngestParams) -> dict[str, Any]:
    """Load bars from a provider into Postgres (one recorded ingest run)."""
    request = IngestRequest(
        provider=params.provider,
        symbols=tuple(params.symbols),
        start=params.start,
        end=params.end,
        interval=params.interval,
        full=params.full,
        options=params.options,
    )
    result = run_ingest(
        ctx.settings,
        request,
        database_url=ctx.database_url,
        redis_url=ctx.redis_url,
        progress=ctx.steps,
    )
    return {
        "run_id": result.run_id,
        "symbols": result.symbols,
        **summary([result], [params.provider]),
    }


def _by_provider(ctx: JobContext, symbols: list[str]) -> dict[str, list[str]]:
    with connect(ctx.database_url, timeout=ctx.settings.connect_timeout) as conn:
        stored = instrument_providers(conn, symbols)
    groups: dict[str, list[str]] = {}
    for symbol in sorted(stored):  # a stable order: the synthetic series depend on it
        groups.setdefault(stored[symbol], []).append(symbol)
    return groups


@job("ingest.watchlist", params=WatchlistParams, schedule="0 22 * * 1-5")
def ingest_watchlist(ctx: JobContext, params: WatchlistParams) -> dict[str, Any]:
    """Load the watchlist's new bars, each symbol from the provider it is stored from."""
    symbols = list(dict.fromkeys(params.symbols or ctx.settings.watchlist))
    groups = _by_provider(ctx, symbols)
    skipped = [s for s in symbols if not any(s in group for group in groups.values())]
    runs: list[dict[str, Any]] = []
    results: list[IngestResult] = []
    done: list[str] = []
    failed: dict[str, str] = {}
    for index, (provider, members) in enumerate(sorted(groups.items())):
        request = IngestRequest(provider=provider, symbols=tuple(members), interval=params.interval)

        def progress(finished: int, total: int, _what: str = "", at: int = index) -> None:
            ctx.progress((at + (finished / total if total else 1.0)) / len(groups))

        try:
            result = run_ingest(
                ctx.settings,
                request,
                database_url=ctx.database_url,
                redis_url=ctx.redis_url,
                progress=progress,
            )
        except IngestError as exc:
            failed[provider] = str(exc)
            runs.append({"provider": provider, "symbols": members, "run_id": exc.run_id})
            continue
        results.append(result)
        done.append(provider)
        runs.append({"provider": provider, "symbols": members, "run_id": result.run_id})
    if groups and not results:
        raise IngestError("; ".join(failed.values()))
    notes = [f"{s}: not stored yet; ingest it once to put it on the schedule" for s in skipped]
    try:  # judge the new bars at once; a failure here must not fail the loaded ingest
        alerts = evaluate_alerts(ctx.settings, ctx.database_url, ctx.redis_url).summary()
    except Exception as exc:
        logging.getLogger(__name__).exception("alert evaluation after the watchlist ingest")
        alerts = {"error": public_error(exc)}
    return {
        "watchlist": symbols,
        "runs": runs,
        **summary(results, done),
        "skipped": skipped,
        "failed": failed,
        "notes": notes,
        "alerts": alerts,
    }
