"""Analog reads: the search over stored market states, and what is stored.

Searches run the engine's `find_analogs` through `Database.run` and go through the
response cache; their entries depend on the `analogs` scope (bumped by every build), the
`regimes` scope (the regime of each analog) and the query symbol's bars.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

import msgspec
import psycopg
from litestar.exceptions import NotFoundException
from litestar.response import Response

from api.domain.analogs.schemas import (
    AnalogSearchResult,
    BuildParams,
    StatesSummary,
    StateVersion,
)
from api.domain.regimes.validation import day_end, invalid, split_symbols
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner, accepted
from engine.analogs.service import (
    AnalogError,
    AnalogSearch,
    UnknownSymbolError,
    default_spec,
    find_analogs,
    parse_horizons,
)
from engine.io import analogs as store
from engine.io.bars import instrument_ids
from engine.schema import SYMBOL, TS
from engine.settings import Settings

__all__ = ["ANALOG_SCOPE", "search", "states_summary", "submit_build"]

ANALOG_SCOPE: Final = "analogs"


def _result(found: AnalogSearch) -> AnalogSearchResult:
    horizons = list(found.horizons)
    analogs = [
        {
            "rank": row["rank"],
            "symbol": row[SYMBOL],
            "ts": row[TS],
            "distance": row["distance"],
            "regime": row["regime"],
            "forward_returns": {str(h): row[f"ret_{h}"] for h in horizons},
        }
        for row in found.analogs.iter_rows(named=True)
    ]
    return msgspec.convert(
        {
            "symbol": found.symbol,
            "ts": found.ts,
            "version": found.version,
            "window": found.window,
            "cutoff": found.cutoff,
            "method": found.method,
            "ef_search": found.ef_search,
            "horizons": horizons,
            "analogs": analogs,
            "distribution": found.distribution.to_dicts(),
            "offsets": found.offsets,
            "query_path": found.query_path.to_dicts(),
            "paths": found.aligned_paths().to_dicts(),
            "fan": found.fan.to_dicts(),
        },
        AnalogSearchResult,
        from_attributes=True,
    )


async def search(
    database: Database,
    cache: ResponseCache,
    settings: Settings,
    *,
    symbol: str,
    on: date | None,
    k: int,
    horizons: str,
    universe: str | None,
    exclude_recent_days: int,
    method: Literal["hnsw", "exact"],
    ef_search: int,
) -> AnalogSearchResult:
    """The `k` nearest earlier states to `symbol`'s on `on` (default: its latest bar)."""
    spec = default_spec(settings)
    try:
        horizon_list = list(parse_horizons(horizons))
    except AnalogError as exc:
        raise invalid(exc.field, str(exc)) from None
    members = split_symbols(universe, "universe") if universe is not None else None

    def run(conn: psycopg.Connection) -> AnalogSearchResult:
        if not store.has_states(conn, spec.version):
            raise NotFoundException(
                detail=f"no market states of version {spec.version} are stored yet: build them "
                "with POST /api/v1/analogs/build or `regimelab analogs build`"
            )
        try:
            found = find_analogs(
                conn,
                symbol,
                date=None if on is None else day_end(on),
                k=k,
                horizons=horizon_list,
                universe=members,
                exclude_recent_days=exclude_recent_days,
                spec=spec,
                method=method,
                ef_search=ef_search,
            )
        except UnknownSymbolError as exc:
            raise NotFoundException(detail=str(exc)) from None
        except AnalogError as exc:
            raise invalid(exc.field, str(exc)) from None
        return _result(found)

    async def compute() -> AnalogSearchResult:
        return await database.run(run)

    key = {
        "symbol": symbol,
        "date": None if on is None else on.isoformat(),
        "k": k,
        "horizons": horizon_list,
        "universe": members,
        "exclude_recent_days": exclude_recent_days,
        "method": method,
        "ef_search": ef_search,
        "version": spec.version,
    }
    depends = [ANALOG_SCOPE, "regimes", f"bars:{symbol}"]
    return await cache.value("analogs", key, depends, compute, AnalogSearchResult)


async def states_summary(database: Database, settings: Settings) -> StatesSummary:
    """Stored states per embedding version, the default version and the index's presence."""
    spec = default_spec(settings)

    def read(conn: psycopg.Connection) -> StatesSummary:
        counts = store.state_counts(conn)
        return StatesSummary(
            default_version=spec.version,
            window=spec.window,
            index=store.has_index(conn),
            versions=[msgspec.convert(row, StateVersion) for row in counts.to_dicts()],
        )

    return await database.run(read)


async def submit_build(
    database: Database, jobs: JobRunner, data: BuildParams | None
) -> Response[JobAccepted]:
    """Queue an `analogs.build` job; 404 naming symbols that are not stored."""
    params = data or BuildParams()
    if params.symbols is not None:
        names = list(dict.fromkeys(params.symbols))
        try:
            await database.run(lambda conn: instrument_ids(conn, names))
        except ValueError as exc:  # names the unknown symbols
            raise NotFoundException(detail=str(exc)) from None
    job_id = await jobs.submit("analogs.build", params)
    assert job_id is not None  # no slot key: always queued
    return accepted(job_id, "analogs.build")
