"""Regime reads: runs, per-bar labels, the current regime, statistics and forecasts.

Reads run the engine's synchronous `engine.io.regimes` functions through `Database.run`
and go through the response cache under the `regimes` data scope, which every stored fit
bumps. `ensure_regime_run` gives a fresh install a run, so the snapshot answers at once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

import msgspec
import psycopg
from litestar.exceptions import ClientException, NotFoundException
from litestar.status_codes import HTTP_409_CONFLICT

from api.domain.regimes.fits import fit_regime_run, invalidate_regimes, symbols_with_bars
from api.domain.regimes.schemas import (
    LabelKind,
    RegimeForecast,
    RegimeForecastStep,
    RegimeLabel,
    RegimeNow,
    RegimeRun,
    RegimeRunSummary,
    RegimeSnapshot,
    RegimeStatistics,
    RegimeStats,
    RunStatus,
)
from api.domain.regimes.validation import (
    check_model,
    check_window,
    day_end,
    day_start,
    invalid,
    split_symbols,
)
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.pagination import Page, Pagination
from engine.io.db import connect
from engine.io.regimes import (
    label_page,
    latest_regimes,
    latest_run_ids,
    list_runs,
    load_labels,
    load_run,
    symbol_run_stats,
)
from engine.regimes.stats import forecast_probabilities, regime_durations, regime_names
from engine.schema import REGIME, SYMBOL, TS
from engine.settings import Settings

__all__ = [
    "ensure_regime_run",
    "get_regime_run",
    "list_regime_runs",
    "regime_forecast",
    "regime_labels",
    "regime_stats",
    "snapshot",
]

log = logging.getLogger(__name__)

_MAX_OFFSET: Final = 2**62  # Postgres OFFSET is a bigint


def ensure_regime_run(settings: Settings, database_url: str, redis_url: str | None) -> int | None:
    """Fit the default model (`settings.regime_model`, `regime_states`) on the watchlist
    symbols that have daily bars unless each of them already has a succeeded run of it;
    the new run's id, or None when nothing needed fitting (or nothing has bars)."""
    symbols = list(settings.watchlist)
    present, _ = symbols_with_bars(settings, database_url, symbols, "1d")
    with connect(database_url, timeout=settings.connect_timeout) as conn:
        covered = latest_run_ids(conn, settings.regime_model, present)
    if not present or set(present) <= set(covered):
        return None
    summary = fit_regime_run(
        settings,
        database_url,
        model=settings.regime_model,
        n_states=settings.regime_states,
        symbols=present,
    )
    invalidate_regimes(settings, redis_url)
    run_id: int | None = summary["run_id"]
    log.info("fitted %s on %s: regime run %s", settings.regime_model, present, run_id)
    return run_id


# ---------------------------------------------------------------- runs


def _summary_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {field.name: record[field.name] for field in msgspec.structs.fields(RegimeRunSummary)}


async def list_regime_runs(
    database: Database,
    page: Pagination,
    *,
    model: str | None,
    status: RunStatus | None,
    symbol: str | None,
) -> Page[RegimeRunSummary]:
    """Runs newest first, optionally of one model, status or symbol."""
    if model is not None:
        check_model(model)
    records, total = await database.run(
        lambda conn: list_runs(
            conn,
            model=model,
            status=status,
            symbol=symbol,
            limit=page.limit,
            offset=min(page.offset, _MAX_OFFSET),
        )
    )
    return page.page([RegimeRunSummary(**_summary_fields(r)) for r in records], total)


async def get_regime_run(database: Database, run_id: int) -> RegimeRun:
    """One run with its parameters and statistics; 404 if there is none."""
    record = await database.run(lambda conn: load_run(conn, run_id))
    if record is None:
        raise NotFoundException(detail=f"no regime run {run_id}")
    return RegimeRun(**_summary_fields(record), params=record["params"], stats=record["stats"])


# ---------------------------------------------------------------- one symbol's run


@dataclasses.dataclass(frozen=True, slots=True)
class _SymbolRun:
    """A succeeded run that fitted `symbol`, with the symbol's part of its statistics."""

    run: dict[str, Any]
    symbol: str
    fit: dict[str, Any]
    regimes: list[dict[str, Any]]
    failure: str | None

    @property
    def run_id(self) -> int:
        return int(self.run["id"])

    @property
    def model(self) -> str:
        return str(self.run["model"])

    @property
    def n_states(self) -> int:
        return int(self.run["n_states"])

    def names(self) -> list[str] | None:
        return _names(self.model, self.fit)


def _names(model: str, fit: Mapping[str, Any]) -> list[str] | None:
    """Human names of a fit's regimes (None if its statistics do not allow them)."""
    variances = fit.get("variances")
    if not variances:
        return None
    try:
        return regime_names(model, variances)
    except ValueError:
        return None


def _name(names: list[str] | None, regime: int) -> str | None:
    return names[regime] if names is not None and 0 <= regime < len(names) else None


def _symbol_run(
    conn: psycopg.Connection, symbol: str, model: str | None, run_id: int | None
) -> _SymbolRun:
    """The run to read for `symbol`: `run_id` (which must be of `model` if one is given),
    else the newest succeeded run of `model` that fitted it."""
    if run_id is None:
        assert model is not None
        ids = latest_run_ids(conn, model, [symbol])
        if symbol not in ids:
            raise NotFoundException(
                detail=f"no succeeded {model} regime run covers {symbol}: fit one with "
                f"POST /api/v1/regimes/fits"
            )
        run_id = ids[symbol]
    run = load_run(conn, run_id, details=False)
    if run is None:
        raise NotFoundException(detail=f"no regime run {run_id}")
    if model is not None and run["model"] != model:
        raise invalid("model", f"regime run {run_id} fitted {run['model']}, not {model}")
    if run["status"] != "succeeded":
        raise ClientException(
            status_code=HTTP_409_CONFLICT,
            detail=f"regime run {run_id} is {run['status']}: only succeeded runs have labels",
        )
    if symbol not in run["symbols"]:
        raise NotFoundException(
            detail=f"regime run {run_id} did not fit {symbol} (it covers "
            f"{', '.join(run['symbols'][:20])})"
        )
    parts = symbol_run_stats(conn, {symbol: run_id}).get(symbol, {})
    return _SymbolRun(
        run, symbol, parts.get("model") or {}, parts.get("regimes") or [], parts.get("failure")
    )


def _run_model(settings: Settings, model: str | None, run_id: int | None) -> str | None:
    """The model to read: as given, else the default; None when a given run decides."""
    if model is not None:
        return check_model(model)
    return check_model(settings.regime_model) if run_id is None else None


# ---------------------------------------------------------------- labels


def _label_page(
    conn: psycopg.Connection,
    *,
    symbol: str,
    model: str | None,
    run_id: int | None,
    kind: LabelKind,
    window: tuple[datetime | None, datetime | None],
    page: Pagination,
) -> Page[RegimeLabel]:
    source = _symbol_run(conn, symbol, model, run_id)
    start, end = window
    rows, total = label_page(
        conn,
        source.run_id,
        symbol,
        kind=kind,
        start=start,
        end=end,
        limit=page.limit,
        offset=min(page.offset, _MAX_OFFSET),
    )
    names = source.names()
    items = [
        RegimeLabel(
            ts=row[TS],
            regime=row[REGIME],
            name=_name(names, row[REGIME]),
            probability=row["probs"][row[REGIME]],
            probs=row["probs"],
            run_id=source.run_id,
        )
        for row in rows.iter_rows(named=True)
    ]
    return page.page(items, total)


async def regime_labels(
    database: Database,
    cache: ResponseCache,
    settings: Settings,
    page: Pagination,
    *,
    symbol: str,
    model: str | None,
    run_id: int | None,
    kind: LabelKind,
    start: date | None,
    end: date | None,
) -> Page[RegimeLabel]:
    """Per-bar regimes and probabilities of one symbol (filtered unless asked otherwise)."""
    resolved = _run_model(settings, model, run_id)
    check_window(start, end)
    window = (
        day_start(start) if start is not None else None,
        day_end(end) if end is not None else None,
    )
    key = {
        "symbol": symbol,
        "model": resolved,
        "run_id": run_id,
        "kind": kind,
        "start": str(start),
        "end": str(end),
        "limit": page.limit,
        "offset": page.offset,
    }

    async def compute() -> Page[RegimeLabel]:
        return await database.run(
            lambda conn: _label_page(
                conn,
                symbol=symbol,
                model=resolved,
                run_id=run_id,
                kind=kind,
                window=window,
                page=page,
            )
        )

    return await cache.value("regimes.labels", key, ["regimes"], compute, Page[RegimeLabel])


# ---------------------------------------------------------------- snapshot


def _snapshot(conn: psycopg.Connection, model: str, symbols: list[str]) -> RegimeSnapshot:
    current = latest_regimes(conn, model, symbols)
    parts = symbol_run_stats(conn, dict(zip(current[SYMBOL], current["run_id"], strict=True)))
    rows = {row[SYMBOL]: row for row in current.iter_rows(named=True)}
    items = []
    for symbol in symbols:
        row = rows.get(symbol)
        if row is None:
            continue
        regime = int(row[REGIME])
        fit = parts.get(symbol, {}).get("model") or {}
        items.append(
            RegimeNow(
                symbol=symbol,
                ts=row[TS],
                regime=regime,
                name=_name(_names(model, fit), regime),
                probability=float(row["probability"]),
                days_in_regime=int(row["days_in_regime"]),
                n_states=int(row["n_states"]),
                run_id=int(row["run_id"]),
            )
        )
    missing = [s for s in symbols if s not in {item.symbol for item in items}]
    detail = None
    if missing:
        detail = (
            f"no succeeded {model} regime run has labels for {', '.join(missing)}: fit one "
            f"with POST /api/v1/regimes/fits or `regimelab regimes fit --model {model} "
            f"--symbols {','.join(missing)}`"
        )
    return RegimeSnapshot(model=model, items=items, missing=missing, detail=detail)


async def snapshot(
    database: Database,
    cache: ResponseCache,
    settings: Settings,
    *,
    symbols: str | None,
    model: str | None,
) -> RegimeSnapshot:
    """The current regime of each symbol (default: the watchlist and the default model)."""
    resolved = check_model(model if model is not None else settings.regime_model)
    wanted = split_symbols(symbols) if symbols is not None else list(settings.watchlist)

    async def compute() -> RegimeSnapshot:
        return await database.run(lambda conn: _snapshot(conn, resolved, wanted))

    key = {"model": resolved, "symbols": wanted}
    return await cache.value("regimes.snapshot", key, ["regimes"], compute, RegimeSnapshot)


# ---------------------------------------------------------------- statistics


def _optional_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _stats(
    conn: psycopg.Connection, symbol: str, model: str | None, run_id: int | None
) -> RegimeStats:
    source = _symbol_run(conn, symbol, model, run_id)
    fit = source.fit
    if not fit:
        reason = f": {source.failure}" if source.failure else ""
        raise NotFoundException(detail=f"regime run {source.run_id} could not fit {symbol}{reason}")
    labels = load_labels(conn, source.model, [symbol], run_id=source.run_id)
    durations = {row[REGIME]: row for row in regime_durations(labels).iter_rows(named=True)}
    realized = {int(row[REGIME]): row for row in source.regimes}
    expected = fit.get("expected_durations") or []
    names = source.names()
    regimes = []
    for regime in range(source.n_states):
        row = realized.get(regime, {})
        spells = durations.get(regime, {})
        regimes.append(
            RegimeStatistics(
                regime=regime,
                name=_name(names, regime),
                bars=int(row.get("bars") or 0),
                share_of_time=float(row.get("share_of_time") or 0.0),
                mean_return=_optional_float(row.get("mean_return")),
                volatility=_optional_float(row.get("volatility")),
                sharpe=_optional_float(row.get("sharpe")),
                expected_duration=_optional_float(expected[regime])
                if regime < len(expected)
                else None,
                spells=int(spells.get("spells") or 0),
                mean_duration=_optional_float(spells.get("mean_duration")),
                max_duration=spells.get("max_duration"),
            )
        )
    return RegimeStats(
        run_id=source.run_id,
        symbol=symbol,
        model=source.model,
        n_states=source.n_states,
        features=list(fit.get("features") or []),
        interval=str(source.run["interval"]),
        train_start=source.run["train_start"],
        train_end=source.run["train_end"],
        n_obs=fit.get("n_obs"),
        loglik=_optional_float(fit.get("loglik")),
        aic=_optional_float(fit.get("aic")),
        bic=_optional_float(fit.get("bic")),
        transition_matrix=fit.get("transmat") or [],
        regimes=regimes,
    )


async def regime_stats(
    database: Database,
    cache: ResponseCache,
    settings: Settings,
    *,
    symbol: str,
    model: str | None,
    run_id: int | None,
) -> RegimeStats:
    """Per-regime statistics and the transition matrix of one symbol's run."""
    resolved = _run_model(settings, model, run_id)

    async def compute() -> RegimeStats:
        return await database.run(lambda conn: _stats(conn, symbol, resolved, run_id))

    key = {"symbol": symbol, "model": resolved, "run_id": run_id}
    return await cache.value("regimes.stats", key, ["regimes"], compute, RegimeStats)


# ---------------------------------------------------------------- forecast


def _forecast(
    conn: psycopg.Connection,
    symbol: str,
    model: str | None,
    run_id: int | None,
    horizon: int,
) -> RegimeForecast:
    source = _symbol_run(conn, symbol, model, run_id)
    transmat = source.fit.get("transmat")
    latest, _ = label_page(conn, source.run_id, symbol, limit=1, newest_first=True)
    if not transmat or latest.is_empty():
        reason = f": {source.failure}" if source.failure else ""
        raise NotFoundException(
            detail=f"regime run {source.run_id} has no fitted model or labels for {symbol}{reason}"
        )
    last = latest.row(0, named=True)
    try:
        path = forecast_probabilities(transmat, last["probs"], horizon)
    except ValueError as exc:
        raise NotFoundException(
            detail=f"regime run {source.run_id} cannot forecast {symbol}: {exc}"
        ) from None
    names = source.names() or [str(k) for k in range(source.n_states)]
    return RegimeForecast(
        run_id=source.run_id,
        symbol=symbol,
        model=source.model,
        n_states=source.n_states,
        as_of=last[TS],
        current=[float(p) for p in last["probs"]],
        names=names,
        steps=[
            RegimeForecastStep(step=step, probs=probs.tolist(), regime=int(probs.argmax()))
            for step, probs in enumerate(path, 1)
        ],
    )


async def regime_forecast(
    database: Database,
    cache: ResponseCache,
    settings: Settings,
    *,
    symbol: str,
    model: str | None,
    run_id: int | None,
    horizon: int,
) -> RegimeForecast:
    """Regime probabilities for the next 1..horizon bars of one symbol."""
    resolved = _run_model(settings, model, run_id)

    async def compute() -> RegimeForecast:
        return await database.run(lambda conn: _forecast(conn, symbol, resolved, run_id, horizon))

    key = {"symbol": symbol, "model": resolved, "run_id": run_id, "horizon": horizon}
    return await cache.value("regimes.forecast", key, ["regimes"], compute, RegimeForecast)
