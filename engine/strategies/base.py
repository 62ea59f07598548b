"""What a strategy is: validated parameters and a function from them to target weights.

A strategy is one small module::

    class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
        window: int = 63

        def __post_init__(self) -> None:
            require(self.window >= 2, "window must be >= 2")

    @strategy("my_momentum", Params, "Long when the trailing return is positive.")
    def my_momentum(p: Params, bars: Bars) -> pl.Expr:
        return pl.when(momentum(p.window, presorted=bars.layout) > 0).then(1.0).otherwise(0.0)

The function returns the *target weight* of each bar as a Polars expression over the bar
frame (symbol, ts, open, high, low, close, volume, plus the regime columns when the spec
names a regime model): 1.0 = all equity long, -0.5 = half short, 0 = flat, null = flat.
The target of bar t is decided at t's close and executed at t+1 by the engine, so a
strategy can only use data up to and including its own bar: rolling windows and shifts
that look back, never `shift(-n)`. `bars.layout` gives the fast per-symbol feature forms
(`engine.features`) on the engine's sorted frame; `bars.over(expr)` is `.over(symbol)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import msgspec
import polars as pl

from engine.errors import ConfigError
from engine.features.per_symbol import Presorted

__all__ = [
    "REGIME_COLUMNS",
    "Bars",
    "SpecError",
    "Strategy",
    "StrategyParams",
    "get_strategy",
    "make_params",
    "require",
    "strategy",
    "strategy_names",
]

REGIME_COLUMNS: Final = ("regime", "regime_prob")
"""Columns the engine joins in when a spec names a regime model: the causal (filtered)
regime of the bar's symbol and its probability. Cross-asset strategies also get
`ref_regime`/`ref_regime_prob`: the regime of the spec's reference symbol at that bar."""


class SpecError(ConfigError, ValueError):
    """A strategy or backtest spec is invalid; raised before any computation."""


def require(condition: bool, message: str) -> None:
    """Raise `SpecError(message)` unless `condition` holds (for `__post_init__` checks)."""
    if not condition:
        raise SpecError(message)


class StrategyParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base class of strategy parameters: a frozen msgspec Struct, so params are validated,
    hashable, and serialize to JSON exactly as they are stored with a run."""

    uses_regimes: ClassVar[bool] = False
    """True when targets read the regime columns (the spec must then name a model)."""


@dataclass(frozen=True, slots=True)
class Bars:
    """The frame a strategy's expression runs on: sorted by (symbol, ts), with the
    engine's per-symbol helper columns."""

    layout: Presorted
    """Pass as `presorted=` to `engine.features` builders for their fast forms."""
    run: str = "_run"

    def over(self, expr: pl.Expr) -> pl.Expr:
        """`expr` evaluated per symbol (e.g. a shift or an ewm)."""
        return expr.over(self.run)


TargetFunction = Callable[[Any, Bars], pl.Expr]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A registered strategy: its name, parameter type, target function and description."""

    name: str
    params: type[StrategyParams]
    targets: TargetFunction
    description: str
    warmup: Callable[[Any], int] | None = None
    """Bars each symbol needs before its first non-null target (for reporting)."""

    def make(self, values: Mapping[str, Any] | StrategyParams | None = None) -> StrategyParams:
        """Validated params from a mapping (JSON-like values are converted)."""
        return make_params(self.params, values, strategy=self.name)


_REGISTRY: dict[str, Strategy] = {}


def strategy(
    name: str,
    params: type[StrategyParams],
    description: str,
    *,
    warmup: Callable[[Any], int] | None = None,
) -> Callable[[TargetFunction], TargetFunction]:
    """Register the decorated target function under `name`."""

    def register(function: TargetFunction) -> TargetFunction:
        if name in _REGISTRY and _REGISTRY[name].targets is not function:
            raise ValueError(f"strategy {name!r} is already registered")
        _REGISTRY[name] = Strategy(name, params, function, description, warmup)
        return function

    return register


_loaded = False


def _load_builtins() -> None:
    """Register the built-in strategies and those of REGIMELAB_STRATEGY_MODULES (once)."""
    global _loaded  # noqa: PLW0603  # a one-time import side effect
    if _loaded:
        return
    import importlib

    import engine.strategies.builtin  # noqa: F401  # registers on import
    from engine.settings import get_settings

    for module in get_settings().strategy_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"REGIMELAB_STRATEGY_MODULES: cannot import {module!r}: {exc}"
            ) from None
    _loaded = True


def strategy_names() -> list[str]:
    """Names of all registered strategies, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    """The registered strategy `name`; SpecError naming the known ones otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpecError(f"unknown strategy {name!r}; known strategies: {known}") from None


def make_params[P: StrategyParams](
    kind: type[P], values: Mapping[str, Any] | StrategyParams | None, *, strategy: str = ""
) -> P:
    """`values` converted to `kind` (strict types, but ints where floats are expected and
    strings from the command line are accepted); SpecError with the field name otherwise."""
    if isinstance(values, kind):
        return values
    if isinstance(values, StrategyParams):
        values = msgspec.structs.asdict(values)
    where = f"strategy {strategy!r}: " if strategy else ""
    try:
        return msgspec.convert(dict(values or {}), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise SpecError(f"{where}{exc}") from None
    except (SpecError, ValueError) as exc:
        raise SpecError(f"{where}{exc}") from None
