"""Regime routes: models, fits (jobs), runs, labels, snapshot, statistics, forecasts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from api.domain.regimes import fits, services
from api.domain.regimes.schemas import (
    SYMBOL_PATTERN,
    FitParams,
    LabelKind,
    RegimeForecast,
    RegimeLabel,
    RegimeModelInfo,
    RegimeRun,
    RegimeRunSummary,
    RegimeSnapshot,
    RegimeStats,
    RunStatus,
)
from api.domain.regimes.validation import MAX_SYMBOLS
from api.lib.auth import requires
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner
from api.lib.pagination import Page, Pagination
from engine.settings import Settings

__all__ = ["ROUTES", "RegimeController"]

_MAX_ID: Final = 2**53 - 1  # ids stay exact in JavaScript clients

SymbolQuery = Annotated[
    str, Parameter(pattern=SYMBOL_PATTERN, max_length=40, description="a stored symbol, e.g. SPX")
]
ModelQuery = Annotated[
    str | None,
    Parameter(max_length=40, description="regime model (default: the configured one)"),
]
RunQuery = Annotated[
    int | None,
    Parameter(ge=1, le=_MAX_ID, description="a regime run (default: the model's newest)"),
]


class RegimeController(Controller):
    """Fit regime models and read their runs, labels, current regimes and forecasts."""

    path = "/regimes"
    tags = ["regimes"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get("/models", operation_id="listRegimeModels", summary="Regime models and their parameters")
    async def models(self, page: NamedDependency[Pagination]) -> Page[RegimeModelInfo]:
        """The models a fit can use, with each hyper-parameter's type and default."""
        return await fits.list_models(page)

    @post(
        "/fits",
        operation_id="createRegimeFit",
        summary="Fit a regime model (a job)",
        guards=[requires("write")],
        status_code=HTTP_202_ACCEPTED,
    )
    async def fit(
        self,
        data: JSONBody[FitParams],
        database: NamedDependency[Database],
        jobs: NamedDependency[JobRunner],
    ) -> Response[JobAccepted]:
        """Check the request, then queue a `regimes.fit` job; poll its `status_url`."""
        return await fits.submit_fit(data, database, jobs)

    @get("/runs", operation_id="listRegimeRuns", summary="Regime runs, newest first")
    async def runs(
        self,
        *,
        database: NamedDependency[Database],
        page: NamedDependency[Pagination],
        model: ModelQuery = None,
        status: Annotated[RunStatus | None, Parameter(description="run status")] = None,
        symbol: Annotated[
            str | None, Parameter(pattern=SYMBOL_PATTERN, max_length=40, description="a symbol")
        ] = None,
    ) -> Page[RegimeRunSummary]:
        """Runs of any model (or one), status and symbol."""
        return await services.list_regime_runs(
            database, page, model=model, status=status, symbol=symbol
        )

    @get("/runs/{run_id:int}", operation_id="getRegimeRun", summary="One regime run")
    async def run(
        self,
        database: NamedDependency[Database],
        run_id: Annotated[int, Parameter(ge=1, le=_MAX_ID)],
    ) -> RegimeRun:
        """The run's parameters, status and statistics (per symbol and regime)."""
        return await services.get_regime_run(database, run_id)

    @get("/labels", operation_id="listRegimeLabels", summary="Per-bar regimes of a symbol")
    async def labels(
        self,
        *,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        settings: NamedDependency[Settings],
        page: NamedDependency[Pagination],
        symbol: SymbolQuery,
        model: ModelQuery = None,
        run_id: RunQuery = None,
        kind: Annotated[
            LabelKind, Parameter(description="filtered (causal, default) or smoothed (research)")
        ] = "filtered",
        start: Annotated[date | None, Parameter(description="first day (UTC)")] = None,
        end: Annotated[date | None, Parameter(description="last day (UTC)")] = None,
    ) -> Page[RegimeLabel]:
        """Regime and probabilities per bar, oldest first; smoothed labels use future bars."""
        return await services.regime_labels(
            database,
            cache,
            settings,
            page,
            symbol=symbol,
            model=model,
            run_id=run_id,
            kind=kind,
            start=start,
            end=end,
        )

    @get("/snapshot", operation_id="getRegimeSnapshot", summary="Current regime across symbols")
    async def snapshot(
        self,
        *,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        settings: NamedDependency[Settings],
        symbols: Annotated[
            str | None,
            Parameter(
                max_length=8000,
                description="comma-separated symbols, at most "
                f"{MAX_SYMBOLS} (default: the watchlist)",
            ),
        ] = None,
        model: ModelQuery = None,
    ) -> RegimeSnapshot:
        """Per symbol: latest regime, its probability and name, bars spent in it. Symbols
        without a run are listed in `missing` with a `detail` on how to fit them."""
        return await services.snapshot(database, cache, settings, symbols=symbols, model=model)

    @get("/stats", operation_id="getRegimeStats", summary="Per-regime statistics of a symbol")
    async def stats(
        self,
        *,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        settings: NamedDependency[Settings],
        symbol: SymbolQuery,
        model: ModelQuery = None,
        run_id: RunQuery = None,
    ) -> RegimeStats:
        """Mean return, volatility, durations and frequency per regime; transition matrix."""
        return await services.regime_stats(
            database, cache, settings, symbol=symbol, model=model, run_id=run_id
        )

    @get("/forecast", operation_id="getRegimeForecast", summary="Regime probabilities ahead")
    async def forecast(
        self,
        *,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        settings: NamedDependency[Settings],
        symbol: SymbolQuery,
        model: ModelQuery = None,
        run_id: RunQuery = None,
        horizon: Annotated[int, Parameter(ge=1, le=250, description="bars ahead (1-250)")] = 20,
    ) -> RegimeForecast:
        """The latest filtered probabilities propagated through the fitted transition matrix."""
        return await services.regime_forecast(
            database,
            cache,
            settings,
            symbol=symbol,
            model=model,
            run_id=run_id,
            horizon=horizon,
        )


ROUTES: list[ControllerRouterHandler] = [RegimeController]
