"""Routes of this domain: strategies, backtests (jobs) and their results, signals."""

from __future__ import annotations

from typing import Annotated, Final

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler

from api.domain.backtests import services
from api.domain.backtests.schemas import (
    NAME_PATTERN,
    SYMBOL_PATTERN,
    BacktestCreate,
    BacktestResult,
    BacktestRun,
    BacktestRunDetail,
    EquityCurve,
    ResultRegimes,
    RunStatus,
    Signal,
    SignalsCompute,
    Strategy,
    StrategyCreate,
    StrategyKind,
    StrategySpec,
)
from api.lib.auth import requires
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner
from api.lib.pagination import Page, Pagination
from api.lib.problems import PROBLEM_JSON, Problem

__all__ = ["ROUTES", "BacktestController", "SignalController", "StrategyController"]

_MAX_ID: Final = 2**63 - 1
_CONFLICT: Final = {
    409: ResponseSpec(
        Problem,
        description="a strategy of that name exists",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}

Db = NamedDependency[Database]
Cache = NamedDependency[ResponseCache]
Jobs = NamedDependency[JobRunner]
Paging = NamedDependency[Pagination]
RunId = Annotated[int, Parameter(ge=1, le=_MAX_ID, description="backtest run id")]
StrategyPath = Annotated[
    str,
    Parameter(min_length=1, max_length=64, pattern=NAME_PATTERN, description="saved strategy"),
]
ResultId = Annotated[
    int | None,
    Parameter(
        ge=1,
        le=_MAX_ID,
        description="result id (GET /backtests/{run_id}/results); optional when the run has "
        "one result",
    ),
]
NameFilter = Annotated[
    str | None,
    Parameter(min_length=1, max_length=64, pattern=NAME_PATTERN, description="saved strategy"),
]
SymbolFilter = Annotated[str | None, Parameter(pattern=SYMBOL_PATTERN, description="symbol")]


class StrategyController(Controller):
    """Strategy kinds (the registry) and saved strategies (named specs for signals)."""

    path = "/strategies"
    tags = ["strategies"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get(
        "/kinds",
        operation_id="listStrategyKinds",
        summary="Registered strategy kinds with their parameters",
    )
    async def kinds(self, page: Paging) -> Page[StrategyKind]:
        """Every strategy a spec may name, with each parameter's default, doc and schema."""
        return services.kinds_page(page)

    @get("/", operation_id="listStrategies", summary="Saved strategies")
    async def list_strategies(self, database: Db, page: Paging) -> Page[Strategy]:
        """Saved strategies by name."""
        return await services.list_strategies(database, page)

    @get(
        "/{name:str}",
        operation_id="getStrategy",
        summary="One saved strategy",
    )
    async def get_strategy(self, name: StrategyPath, database: Db) -> Strategy:
        """The saved strategy and its spec."""
        return await services.get_strategy_spec(database, name)

    @post(
        "/",
        operation_id="createStrategy",
        summary="Save a strategy under a new name",
        guards=[requires("write")],
        responses=_CONFLICT,
    )
    async def create_strategy(self, data: JSONBody[StrategyCreate], database: Db) -> Strategy:
        """201 with the saved strategy; 409 if the name is taken (PUT replaces)."""
        return await services.create_strategy(database, data)

    @put(
        "/{name:str}",
        operation_id="putStrategy",
        summary="Save a strategy under a name, replacing one of that name",
        guards=[requires("write")],
    )
    async def put_strategy(
        self, name: StrategyPath, data: JSONBody[StrategySpec], database: Db
    ) -> Strategy:
        """Create or replace the named strategy."""
        return await services.put_strategy(database, name, data)

    @delete(
        "/{name:str}",
        operation_id="deleteStrategy",
        summary="Delete a saved strategy and its signals",
        guards=[requires("write")],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_strategy(
        self, name: StrategyPath, database: Db, cache: NamedDependency[ResponseCache]
    ) -> None:
        """Its backtest runs stay (no longer linked to it)."""
        await services.delete_strategy(database, name, cache)


class BacktestController(Controller):
    """Backtests run as jobs; their runs, results, equity curves and per-regime metrics."""

    path = "/backtests"
    tags = ["backtests"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @post(
        "/",
        operation_id="createBacktest",
        summary="Run a backtest, sweep or walk-forward analysis (a job)",
        guards=[requires("write")],
        status_code=HTTP_202_ACCEPTED,
    )
    async def create_backtest(
        self, data: JSONBody[BacktestCreate], database: Db, jobs: Jobs
    ) -> Response[JobAccepted]:
        """Validated now (strategy, parameters, grid size, stored bars), run as job `backtest`:
        poll the job for progress; its result names the run (`run_id`) and the best set."""
        return await services.submit_backtest(database, jobs, data)

    @get(
        "/",
        operation_id="listBacktests",
        summary="Backtest runs, newest first",
    )
    async def list_backtests(
        self,
        database: Db,
        page: Paging,
        status: FromQuery[RunStatus | None] = None,
        strategy: Annotated[
            str | None,
            Parameter(
                min_length=1,
                max_length=64,
                pattern=NAME_PATTERN,
                description="strategy kind or saved name",
            ),
        ] = None,
    ) -> Page[BacktestRun]:
        """Optionally of one status and strategy."""
        return await services.list_runs(database, page, status, strategy)

    @get(
        "/{run_id:int}",
        operation_id="getBacktest",
        summary="One backtest run: status, spec and summary",
    )
    async def get_backtest(self, run_id: RunId, database: Db) -> BacktestRunDetail:
        """The exact spec that reproduces the run, its result count and best result."""
        return await services.get_run(database, run_id)

    @get(
        "/{run_id:int}/results",
        operation_id="listBacktestResults",
        summary="Metrics per parameter set and symbol",
    )
    async def list_results(
        self,
        *,
        run_id: RunId,
        database: Db,
        cache: Cache,
        page: Paging,
        sort: Annotated[
            str | None,
            Parameter(
                pattern=r"^[a-z_]{1,32}$",
                description="metric to sort by: " + ", ".join(services.SORTABLE_METRICS),
            ),
        ] = None,
        desc: Annotated[bool, Parameter(description="sort descending")] = False,
        symbol: SymbolFilter = None,
    ) -> Page[BacktestResult]:
        """Stored order, or by a metric (missing values last)."""
        return await services.run_results(
            database, cache, run_id, page, sort=sort, descending=desc, symbol=symbol
        )

    @get(
        "/{run_id:int}/equity",
        operation_id="getBacktestEquity",
        summary="Equity curve of one result",
    )
    async def equity(
        self,
        run_id: RunId,
        database: Db,
        cache: Cache,
        result: ResultId = None,
    ) -> EquityCurve:
        """404 when not stored: the engine keeps curves only for runs of at most 200 results
        (parameter sets x symbols)."""
        return await services.equity_curve(database, cache, run_id, result)

    @get(
        "/{run_id:int}/regimes",
        operation_id="getBacktestRegimes",
        summary="Per-regime metrics of one result",
    )
    async def regimes(self, run_id: RunId, database: Db, result: ResultId = None) -> ResultRegimes:
        """Metrics of the bars that began in each regime (the spec's regime model)."""
        return await services.result_regimes(database, run_id, result)


class SignalController(Controller):
    """Live targets of saved strategies."""

    path = "/signals"
    tags = ["signals"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get("/", operation_id="listSignals", summary="Latest signals of saved strategies")
    async def list_signals(
        self,
        database: Db,
        cache: Cache,
        page: Paging,
        strategy: NameFilter = None,
        symbol: SymbolFilter = None,
    ) -> Page[Signal]:
        """The newest target per saved strategy and symbol."""
        return await services.latest_signals(database, cache, page, strategy, symbol)

    @post(
        "/",
        operation_id="computeSignals",
        summary="Compute signals of saved strategies now (a job)",
        guards=[requires("write")],
        status_code=HTTP_202_ACCEPTED,
    )
    async def compute_signals(
        self, data: JSONBody[SignalsCompute], database: Db, jobs: Jobs
    ) -> Response[JobAccepted]:
        """Runs job `signals.compute` for one saved strategy, or all (also on a schedule)."""
        return await services.submit_signals(database, jobs, data)


ROUTES: list[ControllerRouterHandler] = [StrategyController, BacktestController, SignalController]
