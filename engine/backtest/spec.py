"""Backtest specs: what to trade, how orders execute, how positions are sized.

Specs are msgspec Structs: validated on construction (`BacktestSpec.parse(...)`), stored as
JSON with every run, and decoded back to rerun it exactly. All validation happens here,
before any data is loaded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Literal

import msgspec

from engine.strategies.base import SpecError, StrategyParams, get_strategy, require

__all__ = [
    "BacktestSpec",
    "Execution",
    "Portfolio",
    "RegimeInput",
    "Sizing",
    "expand_grid",
    "parse_grid",
]

Rebalance = Literal["on_change", "daily", "weekly", "monthly"]
Direction = Literal["long", "short", "long_short"]


class Execution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How targets become orders. A target decided at bar t's close executes at bar t+1:
    at its close (default) or its open.

    Fees follow vectorbt's `Portfolio.from_signals`: a fee is `fees_bps` / 10,000 of each
    order's value, paid from cash, so an all-in buy gets size = cash / (price * (1 + fee)).
    Slippage moves the fill price against the order by `slippage_bps`. After an order the
    position is exactly its target weight of equity (marked at the reference price).
    """

    price: Literal["close", "open"] = "close"
    fees_bps: float = 0.0
    slippage_bps: float = 0.0
    rebalance: Rebalance = "on_change"
    """on_change: trade only when the target changes (positions drift with prices, as in
    from_signals); daily/weekly/monthly: also trade back to target weights on the first
    bar of each period."""
    init_cash: float = 100_000.0

    def __post_init__(self) -> None:
        require(0 <= self.fees_bps < 10_000, f"fees_bps must be in [0, 10000), got {self.fees_bps}")
        require(
            0 <= self.slippage_bps < 10_000,
            f"slippage_bps must be in [0, 10000), got {self.slippage_bps}",
        )
        require(self.init_cash > 0, f"init_cash must be > 0, got {self.init_cash}")

    @property
    def fee(self) -> float:
        return self.fees_bps / 10_000.0

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000.0


class Sizing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a strategy's target becomes a weight of equity.

    fixed: the target as is, times `fraction` (1 = all in). vol_target: the target scaled by
    `vol_target` / realized volatility (annualized, over the last `vol_window` bars, known at
    the bar's close), capped at `max_leverage`. `direction` clips targets: long (>= 0),
    short (<= 0) or long_short."""

    kind: Literal["fixed", "vol_target"] = "fixed"
    fraction: float = 1.0
    vol_target: float = 0.15
    vol_window: int = 21
    max_leverage: float = 1.0
    direction: Direction = "long_short"

    def __post_init__(self) -> None:
        require(0 < self.fraction <= 10, f"fraction must be in (0, 10], got {self.fraction}")
        require(0 < self.vol_target <= 5, f"vol_target must be in (0, 5], got {self.vol_target}")
        require(self.vol_window >= 2, f"vol_window must be >= 2, got {self.vol_window}")
        require(
            0 < self.max_leverage <= 10, f"max_leverage must be in (0, 10], got {self.max_leverage}"
        )


class Portfolio(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Trade all symbols from one pool of cash (else each symbol is its own backtest).
    Targets are weights of the portfolio's equity; each is capped at `weight_cap` in
    absolute value and, if the gross weight exceeds `max_gross`, all are scaled down."""

    weight_cap: float = 1.0
    max_gross: float = 1.0

    def __post_init__(self) -> None:
        require(0 < self.weight_cap <= 10, f"weight_cap must be in (0, 10], got {self.weight_cap}")
        require(0 < self.max_gross <= 10, f"max_gross must be in (0, 10], got {self.max_gross}")


class RegimeInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which regime labels a backtest reads: the newest stored run of `model` per symbol
    (causal, filtered labels only). `reference` names the symbol whose regime drives
    cross-asset strategies (regime_allocation)."""

    model: str
    reference: str | None = None


class BacktestSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything that defines a backtest run; `encode()` is what gets stored."""

    strategy: str
    symbols: tuple[str, ...]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = msgspec.field(default_factory=dict)
    start: date | None = None
    end: date | None = None
    interval: str = "1d"
    execution: Execution = msgspec.field(default_factory=Execution)
    sizing: Sizing = msgspec.field(default_factory=Sizing)
    portfolio: Portfolio | None = None
    regimes: RegimeInput | None = None
    benchmark: str | None = None
    """Symbol whose buy-and-hold is the benchmark (default: each symbol's own)."""

    def __post_init__(self) -> None:
        require(bool(self.symbols), "the universe is empty: give at least one symbol")
        require(len(set(self.symbols)) == len(self.symbols), "symbols must not repeat")
        if self.start is not None and self.end is not None:
            require(self.start <= self.end, f"start {self.start} is after end {self.end}")
        overlap = set(self.grid) & set(self.params)
        require(not overlap, f"parameter(s) both fixed and in the grid: {sorted(overlap)}")
        for name, values in self.grid.items():
            require(len(values) > 0, f"grid parameter {name!r} has no values")
        self.param_sets()  # validates the strategy name and every grid combination
        if get_strategy(self.strategy).params.uses_regimes:
            require(self.regimes is not None, f"strategy {self.strategy!r} needs regimes.model")

    @classmethod
    def parse(cls, data: Mapping[str, Any] | bytes | str) -> BacktestSpec:
        """A spec from a mapping or JSON; SpecError with the offending field otherwise."""
        try:
            if isinstance(data, bytes | str):
                return msgspec.json.decode(data, type=cls, strict=False)
            return msgspec.convert(dict(data), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SpecError(str(exc)) from None
        except msgspec.DecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    def to_builtins(self) -> dict[str, Any]:
        data = msgspec.to_builtins(self)
        assert isinstance(data, dict)
        return data

    def param_sets(self) -> list[StrategyParams]:
        """The validated parameter sets: `params` with each grid combination applied."""
        definition = get_strategy(self.strategy)
        return [definition.make({**self.params, **combo}) for combo in expand_grid(self.grid)]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of a grid, in the order given ({} for an empty grid)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def _number(text: str) -> int | float:
    value = float(text)
    return (
        int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    )


def parse_grid(items: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """`k=a:b:step` (inclusive range), `k=a,b,c` or `k=v` items as a grid."""
    grid: dict[str, tuple[Any, ...]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise SpecError(f"grid item {item!r} is not k=a:b:step or k=a,b,c")
        try:
            if ":" in text:
                parts = [_number(p) for p in text.split(":")]
                if len(parts) != 3 or parts[2] <= 0:
                    raise SpecError(f"grid range {item!r} must be start:stop:step with step > 0")
                start, stop, step = parts
                count = int((stop - start) / step + 1e-9) + 1
                values: tuple[Any, ...] = tuple(
                    _round(start + i * step, step) for i in range(max(count, 0))
                )
                if not values:
                    raise SpecError(f"grid range {item!r} is empty (stop < start)")
            else:
                values = tuple(_scalar(v.strip()) for v in text.split(","))
        except ValueError as exc:
            raise SpecError(f"grid item {item!r}: {exc}") from None
        grid[name] = values
    return grid


def _round(value: float, step: float) -> int | float:
    if isinstance(step, int) and float(value).is_integer():
        return int(value)
    return round(value, 12)


def _scalar(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
