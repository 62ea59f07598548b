"""Specs between the API and the engine: request specs validated into engine specs (400s
that name the field at fault, before any job is queued), stored specs shown back, and
the registry's strategy kinds described.

The strategy registry, `BacktestSpec.parse` and the stored bars decide what is valid;
this module only checks in an order that tells which field broke a rule, and caps the
size of sweeps.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any, Final

import msgspec
import psycopg
from litestar.exceptions import ValidationException

from api.domain.backtests.schemas import (
    MAX_COMBINATIONS,
    MAX_RESULTS,
    BacktestCreate,
    StrategyKind,
    StrategyParameter,
    StrategySpec,
)
from engine.backtest.spec import BacktestSpec, Execution, Portfolio, RegimeInput, Sizing
from engine.io import backtests as store
from engine.io.bars import last_bar_times
from engine.strategies.base import SpecError, get_strategy, strategy_names

__all__ = [
    "MAX_BOOTSTRAP_CELLS",
    "check_analysis",
    "engine_spec",
    "invalid",
    "requested_spec",
    "saveable_spec",
    "spec_view",
    "strategy_kinds",
]

RESERVED_NAMES: Final = frozenset({"kinds"})
"""Strategy names that would collide with a route under /strategies."""
MAX_BOOTSTRAP_CELLS: Final = 1_000_000
"""Monte Carlo paths x symbols of one run."""

Key = Callable[[str | None], str]
"""The request field (dotted) a spec field's error is reported on."""


def invalid(key: str, message: str, source: str = "body") -> ValidationException:
    """A 400 problem naming the offending field (of the body, or the query)."""
    return ValidationException(
        detail=f"{key}: {message}", extra=[{"key": key, "source": source, "message": message}]
    )


def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a class's fields (`x: int = 1` then `\"\"\"...\"\"\"`)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _kind(name: str) -> StrategyKind:
    definition = get_strategy(name)
    params = definition.params
    defaults = msgspec.to_builtins(params())
    schema = msgspec.json.schema(params)
    properties = schema.get("$defs", {}).get(params.__name__, {}).get("properties", {})
    docs = _field_docs(params)
    return StrategyKind(
        name=name,
        description=definition.description,
        uses_regimes=params.uses_regimes,
        parameters=[
            StrategyParameter(
                name=field,
                default=defaults.get(field),
                doc=docs.get(field),
                schema=properties.get(field, {}),
            )
            for field in params.__struct_fields__
        ],
    )


@cache
def strategy_kinds() -> list[StrategyKind]:
    """Every registered strategy with its parameters, defaults and docs."""
    return [_kind(name) for name in strategy_names()]


def _text_safe(value: Any) -> bool:
    """False if any string in `value` holds a NUL (Postgres text and JSONB cannot)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, Mapping):
        return all(_text_safe(k) and _text_safe(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_text_safe(v) for v in value)
    return True


def _inline_key(field: str | None) -> str:
    return f"spec.{field}" if field else "spec"


def _field_of(message: str, fields: Sequence[str]) -> str | None:
    """The spec field a SpecError message is about: its `- at $.field` path, or the field
    it starts with ('symbols must not repeat')."""
    _, found, path = message.rpartition("- at `$.")
    if found:
        return path.split("`")[0].split(".")[0].split("[")[0]
    first = message.split(" ", 1)[0]
    return first if first in fields else None


def _spec_data(spec: StrategySpec) -> dict[str, Any]:
    data = msgspec.to_builtins(spec)
    assert isinstance(data, dict)
    return data


def _parse(data: Mapping[str, Any], key: Key) -> BacktestSpec:
    """`data` as an engine spec; 400 naming `key(field)` of the failing field otherwise."""
    try:
        return BacktestSpec.parse(data)
    except SpecError as exc:
        message = str(exc)
        raise invalid(key(_field_of(message, list(data))), message) from None


def engine_spec(
    data: Mapping[str, Any],
    key: Key,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> BacktestSpec:
    """The engine spec of a strategy spec (plus a sweep grid), validated step by step so a
    400 names the field at fault: the strategy kind, its params, the spec, then the grid."""
    if not _text_safe(data):
        raise invalid(key(None), "text must not contain NUL characters")
    if grid and not _text_safe(grid):
        raise invalid("grid", "text must not contain NUL characters")
    try:
        definition = get_strategy(str(data.get("strategy")))
    except SpecError as exc:
        raise invalid(key("strategy"), str(exc)) from None
    params = dict(data.get("params") or {})
    try:
        definition.make(params)
    except SpecError as exc:
        raise invalid(key("params"), str(exc)) from None
    single = _parse({**data, "grid": {}}, key)
    if not grid:
        return single
    combinations = math.prod(len(values) for values in grid.values())
    if combinations > MAX_COMBINATIONS:
        raise invalid(
            "grid", f"{combinations:,} parameter sets; at most {MAX_COMBINATIONS:,} per run"
        )
    if combinations * len(single.symbols) > MAX_RESULTS:
        raise invalid(
            "grid",
            f"{combinations:,} parameter sets x {len(single.symbols)} symbols; "
            f"at most {MAX_RESULTS:,} results per run",
        )
    fixed = {k: v for k, v in params.items() if k not in grid}
    swept = {**data, "params": fixed, "grid": {k: list(v) for k, v in grid.items()}}
    return _parse(swept, lambda _: "grid")


def saveable_spec(name: str, spec: StrategySpec) -> BacktestSpec:
    """The engine spec of a strategy to save as `name`."""
    if name in RESERVED_NAMES:
        raise invalid("name", f"{name!r} is reserved; choose another name")
    return engine_spec(_spec_data(spec), _inline_key)


def _check_bars(conn: psycopg.Connection, spec: BacktestSpec, keys: Mapping[str, str]) -> None:
    """400 unless every symbol the spec reads has bars at its interval, in its range."""
    needed: dict[str, str] = dict.fromkeys(spec.symbols, keys["symbols"])
    if spec.benchmark:
        needed.setdefault(spec.benchmark, keys["benchmark"])
    if spec.regimes is not None and spec.regimes.reference:
        needed.setdefault(spec.regimes.reference, keys["regimes"])
    latest = last_bar_times(conn, list(needed), spec.interval)
    missing = [s for s in needed if s not in latest]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise invalid(
            needed[missing[0]],
            f"no {spec.interval} bars stored for {shown}; ingest them first",
        )
    if spec.start is not None:
        start = datetime.combine(spec.start, time.min, tzinfo=UTC)
        stale = [s for s in spec.symbols if latest[s] < start]
        if stale:
            raise invalid(
                keys["start"], f"no bars of {', '.join(stale[:10])} on or after {spec.start}"
            )


def _part[T](kind: type[T], value: Any) -> T | None:
    return None if value is None else msgspec.convert(value, kind, strict=False)


def spec_view(stored: Mapping[str, Any]) -> StrategySpec:
    """A stored spec as the API shows it. Built field by field, not decoded: a strategy
    saved from the CLI may exceed the API's input limits (say, more symbols)."""
    return StrategySpec(
        strategy=str(stored.get("strategy")),
        symbols=[str(symbol) for symbol in stored.get("symbols") or ()],
        params=dict(stored.get("params") or {}),
        start=_part(date, stored.get("start")),
        end=_part(date, stored.get("end")),
        interval=str(stored.get("interval") or "1d"),
        execution=_part(Execution, stored.get("execution") or {}) or Execution(),
        sizing=_part(Sizing, stored.get("sizing") or {}) or Sizing(),
        portfolio=_part(Portfolio, stored.get("portfolio")),
        regimes=_part(RegimeInput, stored.get("regimes")),
        benchmark=stored.get("benchmark"),
    )


def requested_spec(
    conn: psycopg.Connection, data: BacktestCreate
) -> tuple[BacktestSpec, int | None]:
    """The engine spec a backtest request runs and the saved strategy it names."""
    if (data.spec is None) == (data.strategy is None):
        raise invalid("spec", "give either spec (inline) or strategy (a saved one's name)")
    overrides = {
        k: v
        for k, v in (("symbols", data.symbols), ("start", data.start), ("end", data.end))
        if v is not None
    }
    strategy_id = None
    if data.spec is not None:
        base = _spec_data(data.spec)

        def key(field: str | None) -> str:
            return field if field in overrides else _inline_key(field)

    else:
        assert data.strategy is not None
        row = store.get_strategy_row(conn, data.strategy)
        if row is None:
            raise invalid("strategy", f"no saved strategy named {data.strategy!r}")
        strategy_id, _, base = row

        def key(field: str | None) -> str:
            return field if field in overrides else "strategy"

    spec_data = {**base, **msgspec.to_builtins(overrides)}
    spec = engine_spec(spec_data, key, data.grid)
    names = ("symbols", "benchmark", "regimes", "start")
    _check_bars(conn, spec, {name: key(name) for name in names})
    return spec, strategy_id


def check_analysis(spec: BacktestSpec, data: BacktestCreate) -> None:
    """400 unless the requested analyses fit the run: a bootstrap needs equity curves."""
    if data.monte_carlo is None:
        return
    if spec.grid and data.walk_forward is None:
        raise invalid(
            "monte_carlo",
            "a sweep keeps no equity curves: bootstrap one parameter set or a walk-forward",
        )
    if len(spec.symbols) * data.monte_carlo.paths > MAX_BOOTSTRAP_CELLS:
        raise invalid("monte_carlo", "paths x symbols is at most 1,000,000: fewer paths or symbols")
