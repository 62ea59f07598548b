"""Regime fits: the model catalogue, checking and queueing fit requests, and the fitting that
jobs (and `regimelab up`, through `services.ensure_regime_run`) run.

A request is checked with the same `RegimeSpec` the job builds, so a queued fit only fails
for reasons the data decides (too little history, a model that does not converge).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import polars as pl
import psycopg
from anyio import to_thread
from litestar import Response
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_409_CONFLICT

from api.domain.regimes.schemas import FitParams, ModelParameter, RegimeModelInfo
from api.domain.regimes.validation import (
    check_model,
    check_window,
    day_end,
    day_start,
    invalid,
)
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner, accepted
from api.lib.pagination import Page, Pagination
from engine.features.pipeline import feature_names
from engine.io.bars import last_bar_times, list_instruments
from engine.io.cache import bump_versions, client
from engine.io.db import connect
from engine.providers.standard.bars import INTERVALS
from engine.regimes.fitting import WalkForward
from engine.regimes.registry import MODEL_CLASSES
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import Progress, RegimeResult, RegimeSpec
from engine.schema import SYMBOL
from engine.settings import Settings

__all__ = [
    "check_fit",
    "fit_regime_run",
    "fit_spec",
    "fit_summary",
    "fit_window",
    "invalidate_regimes",
    "list_models",
    "submit_fit",
    "symbols_with_bars",
]

MAX_STATES: Final = 8
_SHOWN_CHOICES: Final = 50


def _hint_text(hint: object) -> tuple[str, list[str] | None]:
    """A parameter's type as a JSON user reads it, and its choices if it has a fixed set."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "string", [str(a) for a in typing.get_args(hint)]
    if origin is tuple:  # tuples arrive as JSON lists
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"list[{_hint_text(args[0])[0] if args else 'Any'}]", None
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return text.replace("typing.", "").replace("NoneType", "None"), None


def _json_default(value: object) -> Any:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def _model_info(name: str, target: str) -> RegimeModelInfo:
    module, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    hints: dict[str, Any] = {}
    for source in (cls.__init__, cls):
        try:
            hints.update(typing.get_type_hints(source))
        except (NameError, TypeError):  # an annotation that does not resolve: show its text
            continue
    signature = inspect.signature(cls)
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "n_states":
            continue
        hint = hints.get(parameter.name, parameter.annotation)
        type_text, choices = _hint_text(hint)
        parameters.append(
            ModelParameter(
                name=parameter.name,
                type=type_text,
                default=_json_default(parameter.default),
                choices=choices,
            )
        )
    if name == "rules":
        from engine.regimes.rules import RULES_STATE_NAMES

        states = sorted(RULES_STATE_NAMES)
    else:
        states = list(range(2, MAX_STATES + 1))
    default_states = signature.parameters["n_states"].default
    return RegimeModelInfo(
        name=name,
        description=" ".join((inspect.getdoc(cls) or name).split("\n\n")[0].split()),
        n_states=states,
        default_n_states=int(default_states),
        causal_filter=bool(cls.causal_filter),
        parameters=parameters,
    )


@functools.cache
def _model_catalogue() -> tuple[RegimeModelInfo, ...]:
    return tuple(_model_info(name, target) for name, target in MODEL_CLASSES.items())


async def list_models(page: Pagination) -> Page[RegimeModelInfo]:
    """The regime models with their hyper-parameters and defaults."""
    catalogue = await to_thread.run_sync(_model_catalogue)  # first call imports the models
    return page.page(list(catalogue[page.offset : page.offset + page.limit]), len(catalogue))


def _walk_forward(params: FitParams) -> WalkForward | None:
    options = params.walk_forward
    if options is None:
        return None
    return WalkForward(
        mode=options.mode,
        min_train=options.min_train,
        refit_every=options.refit_every,
        window=options.window,
    )


def fit_spec(params: FitParams) -> RegimeSpec:
    """The engine's spec of a fit request (ValueError/TypeError on bad parameters)."""
    return RegimeSpec(
        model=params.model,
        n_states=params.n_states,
        features=feature_names(params.features),
        params=dict(params.params),
        walk_forward=_walk_forward(params),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fit_window(params: FitParams) -> tuple[datetime | None, datetime | None]:
    """The fit's bar window in UTC, both days included."""
    start = day_start(params.start) if params.start is not None else None
    end = day_end(params.end) if params.end is not None else None
    return start, end


def check_fit(params: FitParams) -> FitParams:
    """`params` checked without touching the database (symbols de-duplicated); 400s that say
    what is wrong and what is allowed."""
    check_model(params.model)
    try:
        feature_names(params.features)
    except ValueError as exc:
        raise invalid("features", str(exc)) from None
    if params.interval not in INTERVALS:
        raise invalid(
            "interval", f"unknown interval {params.interval!r}; one of {', '.join(INTERVALS)}"
        )
    check_window(params.start, params.end)
    try:
        _walk_forward(params)
    except ValueError as exc:
        raise invalid("walk_forward", _first_line(exc)) from None
    try:
        fit_spec(params)
    except Exception as exc:  # the model's constructor checks user-given hyper-parameters
        hint = " (GET /api/v1/regimes/models lists each type)" if isinstance(exc, TypeError) else ""
        raise invalid("params", f"invalid {params.model} fit: {_first_line(exc)}{hint}") from None
    return msgspec.structs.replace(params, symbols=list(dict.fromkeys(params.symbols)))


def _symbols_without_bars(
    conn: psycopg.Connection, symbols: Sequence[str], interval: str
) -> tuple[list[str], list[str]]:
    """(requested symbols with no stored `interval` bars, stored symbols that have some)."""
    present = last_bar_times(conn, symbols, interval)
    missing = [s for s in symbols if s not in present]
    if not missing:
        return [], []
    stored = list_instruments(conn)
    if stored.is_empty():
        return missing, []
    with_bars = stored.filter((pl.col("interval") == interval) & (pl.col("bars") > 0))
    return missing, with_bars[SYMBOL].unique(maintain_order=True).to_list()


async def submit_fit(
    params: FitParams, database: Database, jobs: JobRunner
) -> Response[JobAccepted]:
    """Queue a `regimes.fit` job after checking the request and that every symbol has bars."""
    params = check_fit(params)
    missing, choices = await database.run(
        lambda conn: _symbols_without_bars(conn, params.symbols, params.interval)
    )
    if missing:
        shown = ", ".join(choices[:_SHOWN_CHOICES]) or "none: ingest some first"
        more = f" (+{len(choices) - _SHOWN_CHOICES} more)" if len(choices) > _SHOWN_CHOICES else ""
        raise invalid(
            "symbols",
            f"no stored {params.interval} bars for {', '.join(missing[:_SHOWN_CHOICES])}; "
            f"symbols with bars: {shown}{more}",
        )
    job_id = await jobs.submit("regimes.fit", params)
    if job_id is None:  # only with a slot key, which API fits do not use
        raise ClientException(status_code=HTTP_409_CONFLICT, detail="the fit was already queued")
    return accepted(job_id, "regimes.fit")


def fit_summary(run_id: int, result: RegimeResult) -> dict[str, Any]:
    """What a fit job reports: the run, its model, the fitted symbols and the failures."""
    return {
        "run_id": run_id,
        "model": result.spec.model,
        "n_states": result.spec.n_states,
        "symbols": sorted(result.params),
        "failures": dict(result.failures),
    }


def symbols_with_bars(
    settings: Settings, database_url: str, symbols: Sequence[str], interval: str
) -> tuple[list[str], list[str]]:
    """(those of `symbols` with stored `interval` bars, those without), order kept."""
    with connect(database_url, timeout=settings.connect_timeout) as conn:
        present = last_bar_times(conn, symbols, interval)
    return [s for s in symbols if s in present], [s for s in symbols if s not in present]


def invalidate_regimes(settings: Settings, redis_url: str | None) -> None:
    """Bump the `regimes` data version so cached regime reads recompute (outside a job)."""
    if redis_url is None:
        return
    redis_client = client(redis_url, timeout=settings.connect_timeout)
    try:
        bump_versions(redis_client, settings.cache_prefix, ["regimes"])
    finally:
        redis_client.close()


def fit_regime_run(
    settings: Settings,
    database_url: str,
    *,
    model: str,
    n_states: int,
    symbols: Sequence[str],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit `model` on the daily bars of those `symbols` that have some; the job summary,
    with the symbols skipped for lack of bars under `missing` (run_id None if all were)."""
    present, missing = symbols_with_bars(settings, database_url, symbols, "1d")
    if not present:
        return {
            "run_id": None,
            "model": model,
            "n_states": n_states,
            "symbols": [],
            "failures": {},
            "missing": missing,
            "note": "none of the symbols has stored 1d bars: ingest them first",
        }
    run_id, result = run_regime_fit(
        database_url,
        RegimeSpec(model=model, n_states=n_states),
        present,
        progress=progress,
        timeout=settings.connect_timeout,
    )
    return {**fit_summary(run_id, result), "missing": missing}
