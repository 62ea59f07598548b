"""Analog routes: "periods like today" for a symbol, stored states, and the build job."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from api.domain.analogs import services
from api.domain.analogs.schemas import AnalogSearchResult, BuildParams, StatesSummary
from api.domain.regimes.schemas import SYMBOL_PATTERN
from api.lib.auth import requires
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner
from engine.analogs.service import MAX_K
from engine.settings import Settings

__all__ = ["ROUTES", "AnalogController"]


class AnalogController(Controller):
    """Find the market states most like a symbol's today, and what happened after them."""

    path = "/analogs"
    tags = ["analogs"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get("/states", operation_id="getAnalogStates", summary="Stored market states")
    async def states(
        self, database: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> StatesSummary:
        """States per embedding version, the version searches use, and whether the HNSW
        index exists."""
        return await services.states_summary(database, settings)

    @post(
        "/build",
        operation_id="buildAnalogStates",
        summary="Embed market states (a job)",
        guards=[requires("write")],
        status_code=HTTP_202_ACCEPTED,
    )
    async def build(
        self,
        database: NamedDependency[Database],
        jobs: NamedDependency[JobRunner],
        data: JSONBody[BuildParams | None] = None,
    ) -> Response[JobAccepted]:
        """Queue an `analogs.build` job (new bars only unless `full`); poll its status_url."""
        return await services.submit_build(database, jobs, data)

    @get(
        "/{symbol:str}",
        operation_id="findAnalogs",
        summary="Periods like today: nearest earlier market states and what followed",
    )
    async def find(
        self,
        *,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        settings: NamedDependency[Settings],
        symbol: Annotated[
            str,
            Parameter(pattern=SYMBOL_PATTERN, max_length=40, description="a stored symbol"),
        ],
        date: Annotated[
            date | None,
            Parameter(
                description="query date (default: the latest bar; a non-trading day means "
                "the last bar before it)",
            ),
        ] = None,
        k: Annotated[
            int, Parameter(ge=1, le=MAX_K, description=f"analogs to return (1-{MAX_K})")
        ] = 10,
        horizons: Annotated[
            str,
            Parameter(
                max_length=100,
                description="comma-separated forward horizons in bars (1-252)",
            ),
        ] = "5,21,63",
        universe: Annotated[
            str | None,
            Parameter(
                max_length=8000,
                description="comma-separated symbols analogs may come from (default: all)",
            ),
        ] = None,
        exclude_recent_days: Annotated[
            int,
            Parameter(
                ge=0, le=36_500, description="also skip analogs this many days before the date"
            ),
        ] = 0,
        method: Annotated[
            Literal["hnsw", "exact"],
            Parameter(description="hnsw (approximate, fast) or exact (brute force)"),
        ] = "hnsw",
        ef_search: Annotated[
            int, Parameter(ge=1, le=1000, description="HNSW candidate list size (recall/speed)")
        ] = 100,
    ) -> AnalogSearchResult:
        """The `k` nearest earlier states (one per episode), with their forward returns and
        distribution, and each path around its date for drawing over today's. No analog
        overlaps the query's window or lies after it; returns use bars up to the date only."""
        return await services.search(
            database,
            cache,
            settings,
            symbol=symbol,
            on=date,
            k=k,
            horizons=horizons,
            universe=universe,
            exclude_recent_days=exclude_recent_days,
            method=method,
            ef_search=ef_search,
        )


ROUTES: list[ControllerRouterHandler] = [AnalogController]
