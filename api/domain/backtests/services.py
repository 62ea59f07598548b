"""Strategies, backtests and signals: writes, job submissions and reads over the engine.

Requests are validated first (`specs`); reads and writes call `engine.io.backtests` on a
pooled connection off the event loop; long work is queued as jobs (`jobs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import msgspec
import psycopg
from litestar import Response
from litestar.exceptions import ClientException, NotFoundException
from litestar.status_codes import HTTP_409_CONFLICT

from api.domain.backtests.jobs import BacktestJob, SignalsJob
from api.domain.backtests.schemas import (
    BacktestCreate,
    BacktestResult,
    BacktestRun,
    BacktestRunDetail,
    EquityCurve,
    RegimeMetrics,
    ResultRegimes,
    RunStatus,
    RunSummary,
    Signal,
    SignalsCompute,
    Strategy,
    StrategyCreate,
    StrategyKind,
    StrategySpec,
)
from api.domain.backtests.specs import (
    check_analysis,
    invalid,
    requested_spec,
    saveable_spec,
    spec_view,
    strategy_kinds,
)
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner, accepted
from api.lib.pagination import Page, Pagination
from engine.backtest.metrics import METRICS
from engine.backtest.runs import WALK_FORWARD
from engine.io import backtests as store

__all__ = [
    "SORTABLE_METRICS",
    "create_strategy",
    "delete_strategy",
    "equity_curve",
    "get_run",
    "get_strategy_spec",
    "kinds_page",
    "latest_signals",
    "list_runs",
    "list_strategies",
    "put_strategy",
    "result_regimes",
    "run_results",
    "submit_backtest",
    "submit_signals",
]

SORTABLE_METRICS: Final = tuple(m for m in METRICS if m not in ("start", "end"))
"""Metrics results can be sorted by (the numeric ones)."""
EQUITY_KEPT_UP_TO: Final = 200
"""The engine stores equity curves only for runs of at most this many results."""
MAX_OFFSET: Final = 2**53
"""Offsets beyond any real list (larger ones would overflow Postgres bigint)."""
_BACKTESTS: Final = ("backtests",)
_SIGNALS: Final = ("signals",)


def _skip(page: Pagination) -> int:
    """The page's offset, capped where every list is long over (past it: an empty page)."""
    return min(page.offset, MAX_OFFSET)


def _missing(what: str) -> NotFoundException:
    return NotFoundException(detail=what)


# ---------------------------------------------------------------- strategies


def kinds_page(page: Pagination) -> Page[StrategyKind]:
    """Registered strategy kinds by name."""
    kinds = strategy_kinds()
    return page.page(kinds[_skip(page) : _skip(page) + page.limit], len(kinds))


def _strategy(row: Mapping[str, Any]) -> Strategy:
    return Strategy(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        spec=spec_view(row["spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def list_strategies(database: Database, page: Pagination) -> Page[Strategy]:
    """Saved strategies by name."""

    def read(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], int]:
        rows = store.list_strategies(conn, limit=page.limit, offset=_skip(page))
        return rows, store.count_strategies(conn)

    rows, total = await database.run(read)
    return page.page([_strategy(row) for row in rows], total)


async def get_strategy_spec(database: Database, name: str) -> Strategy:
    """The saved strategy `name`; 404 if there is none."""
    row = await database.run(lambda conn: store.load_strategy(conn, name))
    if row is None:
        raise _missing(f"no saved strategy named {name!r}")
    return _strategy(row)


async def create_strategy(database: Database, data: StrategyCreate) -> Strategy:
    """Save a new strategy; 409 when the name is taken."""
    spec = saveable_spec(data.name, data.spec)

    def write(conn: psycopg.Connection) -> dict[str, Any] | None:
        created = store.insert_strategy(conn, data.name, spec.strategy, spec.to_builtins())
        return None if created is None else store.load_strategy(conn, data.name)

    row = await database.run(write)
    if row is None:
        raise ClientException(
            detail=f"a strategy named {data.name!r} exists; PUT /api/v1/strategies/"
            f"{data.name} replaces it",
            status_code=HTTP_409_CONFLICT,
        )
    return _strategy(row)


async def put_strategy(database: Database, name: str, spec: StrategySpec) -> Strategy:
    """Save `spec` as `name`, replacing a strategy of that name."""
    checked = saveable_spec(name, spec)

    def write(conn: psycopg.Connection) -> dict[str, Any] | None:
        store.upsert_strategy(conn, name, checked.strategy, checked.to_builtins())
        return store.load_strategy(conn, name)

    row = await database.run(write)
    assert row is not None
    return _strategy(row)


async def delete_strategy(database: Database, name: str, cache: ResponseCache) -> None:
    """Delete a saved strategy and its signals (its runs stay); 404 if there is none."""
    if not await database.run(lambda conn: store.delete_strategy(conn, name)):
        raise _missing(f"no saved strategy named {name!r}")
    await cache.invalidate(*_SIGNALS)


# ---------------------------------------------------------------- backtests


async def submit_backtest(
    database: Database, jobs: JobRunner, data: BacktestCreate
) -> Response[JobAccepted]:
    """Validate a backtest request against the registry and the stored bars; queue it."""
    spec, strategy_id = await database.run(lambda conn: requested_spec(conn, data))
    check_analysis(spec, data)
    params = BacktestJob(
        spec=spec,
        walk_forward=data.walk_forward,
        monte_carlo=data.monte_carlo,
        strategy_id=strategy_id,
    )
    job_id = await jobs.submit("backtest", params)
    assert job_id is not None  # no slot key: always queued
    return accepted(job_id, "backtest")


def _run(row: Mapping[str, Any]) -> BacktestRun:
    return BacktestRun(
        id=row["id"],
        kind=row["kind"],
        strategy=row.get("strategy"),
        strategy_name=row.get("strategy_name"),
        symbols=list(row["symbols"] or []),
        status=row["status"],
        progress=row["progress"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def list_runs(
    database: Database, page: Pagination, status: RunStatus | None, strategy: str | None
) -> Page[BacktestRun]:
    """Runs, newest first, optionally of one status and strategy (kind or saved name)."""

    def read(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], int]:
        rows = store.find_backtest_runs(
            conn, status=status, strategy=strategy, limit=page.limit, offset=_skip(page)
        )
        return rows, store.count_backtest_runs(conn, status=status, strategy=strategy)

    rows, total = await database.run(read)
    return page.page([_run(row) for row in rows], total)


def _result(row: Mapping[str, Any]) -> BacktestResult:
    return BacktestResult(
        id=row["id"], symbol=row["symbol"], params=row["params"], metrics=row["metrics"]
    )


async def get_run(database: Database, run_id: int) -> BacktestRunDetail:
    """A run with its spec and a summary (result count, best Sharpe); 404 if unknown."""

    def read(
        conn: psycopg.Connection,
    ) -> tuple[dict[str, Any], int, list[dict[str, Any]]] | None:
        runs = store.find_backtest_runs(conn, run_id=run_id, limit=1)
        if not runs:
            return None
        best = store.page_backtest_results(conn, run_id, sort="sharpe", descending=True, limit=1)
        return runs[0], store.count_backtest_results(conn, run_id), best

    found = await database.run(read)
    if found is None:
        raise _missing(f"no backtest run {run_id}")
    row, count, best = found
    stored = dict(row["spec"])
    walk = stored.pop(WALK_FORWARD, None)
    return BacktestRunDetail(
        **msgspec.structs.asdict(_run(row)),
        spec=stored,
        walk_forward=walk,
        summary=RunSummary(results=count, best=_result(best[0]) if best else None),
    )


def _sort_metric(sort: str | None) -> str | None:
    if sort is not None and sort not in SORTABLE_METRICS:
        raise invalid(
            "sort", f"unknown metric {sort!r}; one of {', '.join(SORTABLE_METRICS)}", "query"
        )
    return sort


async def run_results(
    database: Database,
    cache: ResponseCache,
    run_id: int,
    page: Pagination,
    *,
    sort: str | None,
    descending: bool,
    symbol: str | None,
) -> Page[BacktestResult]:
    """One page of a run's results, in stored order or by a metric; 404 if the run is unknown."""
    metric = _sort_metric(sort)

    def read(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], int] | None:
        if store.load_backtest_run(conn, run_id) is None:
            return None
        rows = store.page_backtest_results(
            conn,
            run_id,
            sort=metric,
            descending=descending,
            symbol=symbol,
            limit=page.limit,
            offset=_skip(page),
        )
        return rows, store.count_backtest_results(conn, run_id, symbol=symbol)

    async def compute() -> Page[BacktestResult]:
        found = await database.run(read)
        if found is None:
            raise _missing(f"no backtest run {run_id}")
        rows, total = found
        return page.page([_result(row) for row in rows], total)

    key = {
        "run": run_id,
        "sort": metric,
        "desc": descending,
        "symbol": symbol,
        "limit": page.limit,
        "offset": page.offset,
    }
    return await cache.value("backtests.results", key, _BACKTESTS, compute, Page[BacktestResult])


def _one_result(conn: psycopg.Connection, run_id: int, result_id: int | None) -> dict[str, Any]:
    """Result `result_id` of a run, or its only result; 404/400 otherwise."""
    if store.load_backtest_run(conn, run_id) is None:
        raise _missing(f"no backtest run {run_id}")
    if result_id is None:
        ids = store.backtest_result_ids(conn, run_id, limit=2)
        if not ids:
            raise _missing(f"backtest run {run_id} has no stored results (yet)")
        if len(ids) > 1:
            raise invalid(
                "result",
                f"run {run_id} has several results: give result=<id> "
                f"(GET /api/v1/backtests/{run_id}/results)",
                "query",
            )
        result_id = ids[0]
    row = store.load_backtest_result(conn, run_id, result_id)
    if row is None:
        raise _missing(f"backtest run {run_id} has no result {result_id}")
    return row


def _curve(run_id: int, row: Mapping[str, Any]) -> EquityCurve:
    points = row["equity"]
    if points is None:
        raise _missing(
            f"result {row['id']} of run {run_id} has no stored equity curve: the engine keeps "
            f"curves only for runs of at most {EQUITY_KEPT_UP_TO} results (parameter sets x "
            "symbols); rerun a smaller spec for its curve"
        )
    return EquityCurve(
        run_id=run_id,
        result_id=row["id"],
        symbol=row["symbol"],
        params=row["params"],
        ts=[datetime.fromisoformat(ts) for ts, _ in points],
        equity=[value for _, value in points],
    )


async def equity_curve(
    database: Database, cache: ResponseCache, run_id: int, result_id: int | None
) -> EquityCurve:
    """The stored equity curve of one result; 404 when the run kept no curves."""

    async def compute() -> EquityCurve:
        row = await database.run(lambda conn: _one_result(conn, run_id, result_id))
        return _curve(run_id, row)

    key = {"run": run_id, "result": result_id}
    return await cache.value("backtests.equity", key, _BACKTESTS, compute, EquityCurve)


async def result_regimes(database: Database, run_id: int, result_id: int | None) -> ResultRegimes:
    """Per-regime metrics of one result (empty without a regime model)."""
    row = await database.run(lambda conn: _one_result(conn, run_id, result_id))
    by_regime = dict(row["regime_metrics"] or {})
    return ResultRegimes(
        run_id=run_id,
        result_id=row["id"],
        symbol=row["symbol"],
        params=row["params"],
        regimes=[
            RegimeMetrics(regime=regime, metrics=metrics)
            for regime, metrics in sorted(
                by_regime.items(), key=lambda item: _regime_order(item[0])
            )
        ],
    )


def _regime_order(label: str) -> tuple[int, int]:
    """Numbered regimes in order, then `unknown`."""
    return (0, int(label)) if label.isdigit() else (1, 0)


# ---------------------------------------------------------------- signals


async def latest_signals(
    database: Database,
    cache: ResponseCache,
    page: Pagination,
    strategy: str | None,
    symbol: str | None,
) -> Page[Signal]:
    """The newest signal per saved strategy and symbol, by strategy and symbol."""

    async def compute() -> Page[Signal]:
        frame = await database.run(lambda conn: store.latest_signals(conn, strategy))
        if symbol is not None:
            frame = frame.filter(frame["symbol"] == symbol)
        frame = frame.sort("strategy", "symbol")
        rows = frame.slice(_skip(page), page.limit).to_dicts()
        items = [
            Signal(**{**row, "context": msgspec.json.decode(row["context"] or "{}")})
            for row in rows
        ]
        return page.page(items, frame.height)

    key = {"strategy": strategy, "symbol": symbol, "limit": page.limit, "offset": page.offset}
    return await cache.value("signals", key, _SIGNALS, compute, Page[Signal])


async def submit_signals(
    database: Database, jobs: JobRunner, data: SignalsCompute
) -> Response[JobAccepted]:
    """Queue computing the signals of one saved strategy (404 if unknown) or of all."""
    if data.strategy is not None:
        name = data.strategy
        if await database.run(lambda conn: store.get_strategy_row(conn, name)) is None:
            raise _missing(f"no saved strategy named {name!r}")
    job_id = await jobs.submit("signals.compute", SignalsJob(strategy=data.strategy))
    assert job_id is not None
    return accepted(job_id, "signals.compute")
