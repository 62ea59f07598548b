"""Request and response types of strategies, backtests, results and signals.

A `StrategySpec` is one strategy with one parameter set on a universe, shaped as the
engine's `BacktestSpec` without its grid (execution, sizing, portfolio and regime inputs
are the engine's own structs, validated as they decode); a backtest adds the sweep grid,
walk-forward and Monte Carlo options on top.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from engine.backtest.spec import Execution, Portfolio, RegimeInput, Sizing
from engine.backtest.walkforward import WalkForwardSpec
from engine.io.backtests import RunStatus

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_GRID_VALUES",
    "MAX_RESULTS",
    "MAX_SYMBOLS",
    "NAME_PATTERN",
    "SYMBOL_PATTERN",
    "BacktestCreate",
    "BacktestResult",
    "BacktestRun",
    "BacktestRunDetail",
    "EquityCurve",
    "MonteCarloOptions",
    "RegimeMetrics",
    "ResultRegimes",
    "RunStatus",
    "RunSummary",
    "Signal",
    "SignalsCompute",
    "Strategy",
    "StrategyCreate",
    "StrategyKind",
    "StrategyName",
    "StrategyParameter",
    "StrategySpec",
    "Symbol",
]

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Saved strategy names and strategy kinds."""
SYMBOL_PATTERN: Final = r"^[^\s\x00-\x1f\x7f/]{1,64}$"
"""Symbols: no spaces, control characters or slashes (as the market routes)."""
MAX_SYMBOLS: Final = 500
"""Symbols of one spec."""
MAX_GRID_VALUES: Final = 1_000
"""Values of one grid parameter."""
MAX_COMBINATIONS: Final = 20_000
"""Parameter sets of one sweep (the product of the grid's value counts)."""
MAX_RESULTS: Final = 200_000
"""Results of one run: parameter sets x symbols."""

StrategyName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="name of a saved strategy: letters, digits, '_', '.', '-'",
        examples=["spx-trend"],
    ),
]
Symbol = Annotated[str, Meta(pattern=SYMBOL_PATTERN, examples=["SPX"])]
ParamName = Annotated[str, Meta(min_length=1, max_length=64)]


# ---------------------------------------------------------------- strategies


class StrategyParameter(msgspec.Struct, kw_only=True):
    """One parameter of a strategy kind."""

    name: str
    default: Any
    """The value used when the parameter is left out."""
    doc: str | None
    schema: dict[str, Any]
    """JSON Schema of the parameter's values."""


class StrategyKind(msgspec.Struct, kw_only=True):
    """A registered strategy: what `StrategySpec.strategy` may name."""

    name: str
    description: str
    uses_regimes: bool
    """True when its targets read regime labels: the spec must then name `regimes.model`."""
    parameters: list[StrategyParameter]


class StrategySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One strategy with one parameter set on a universe: what a backtest runs and a saved
    strategy's live signals compute (the engine's `BacktestSpec` without a grid)."""

    strategy: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=64,
            description="registered strategy kind (GET /api/v1/strategies/kinds)",
            examples=["sma_crossover"],
        ),
    ]
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=MAX_SYMBOLS)]
    params: Annotated[dict[ParamName, Any], Meta(max_length=64)] = msgspec.field(
        default_factory=dict
    )
    """The strategy's parameters (its defaults for those left out)."""
    start: date | None = None
    """First day traded (default: the first stored bar)."""
    end: date | None = None
    """Last day traded (default: the last stored bar)."""
    interval: Annotated[str, Meta(pattern=r"^[0-9]{1,3}[a-z]{1,3}$", examples=["1d"])] = "1d"
    execution: Execution = msgspec.field(default_factory=Execution)
    sizing: Sizing = msgspec.field(default_factory=Sizing)
    portfolio: Portfolio | None = None
    """Trade all symbols from one pool of cash (else each symbol is its own backtest)."""
    regimes: RegimeInput | None = None
    """Regime labels the strategy reads and per-regime metrics are grouped by."""
    benchmark: Symbol | None = None
    """Symbol whose buy-and-hold is the benchmark (default: each symbol's own)."""


class StrategyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A strategy to save under a new name."""

    name: StrategyName
    spec: StrategySpec


class Strategy(msgspec.Struct, kw_only=True):
    """A saved strategy: the spec its live signals (and named backtests) run."""

    id: int
    name: str
    kind: str
    """The strategy kind the spec runs."""
    spec: StrategySpec
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- backtests


class MonteCarloOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A circular block bootstrap of each curve's per-bar returns; the distribution of total
    return, CAGR, max drawdown and Sharpe lands in the job's result."""

    paths: Annotated[int, Meta(ge=10, le=10_000)] = 1000
    block: Annotated[int, Meta(ge=1, le=2520)] = 21
    """Bars per resampled block (keeps volatility clusters together)."""
    seed: Annotated[int, Meta(ge=0, le=2**32 - 1)] = 0


class BacktestCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A backtest to run: an inline `spec` or a saved `strategy`, optionally swept over a
    parameter grid, walked forward, or bootstrapped."""

    spec: StrategySpec | None = None
    """The strategy to run (give this or `strategy`)."""
    strategy: StrategyName | None = None
    """Name of a saved strategy to run (give this or `spec`)."""
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=MAX_SYMBOLS)] | None = None
    """Replace the spec's universe."""
    start: date | None = None
    """Replace the spec's first day."""
    end: date | None = None
    """Replace the spec's last day."""
    grid: Annotated[
        dict[ParamName, Annotated[list[Any], Meta(min_length=1, max_length=MAX_GRID_VALUES)]],
        Meta(max_length=16, examples=[{"fast": [10, 20, 50], "slow": [100, 200]}]),
    ] = msgspec.field(default_factory=dict)
    """A sweep: values per parameter; every combination runs (at most 20,000, and at most
    200,000 results with the symbols). Grid values replace the spec's value."""
    walk_forward: WalkForwardSpec | None = None
    """Choose the grid's best set on each training window and trade it on the next."""
    monte_carlo: MonteCarloOptions | None = None
    """Bootstrap the equity curves (one parameter set, or a walk-forward)."""


class BacktestRun(msgspec.Struct, kw_only=True):
    """A backtest run: a single backtest, a sweep or a walk-forward analysis."""

    id: int
    kind: str
    """single, sweep or walk_forward."""
    strategy: str | None
    """The strategy kind it ran."""
    strategy_name: str | None
    """The saved strategy it ran, if any."""
    symbols: list[str]
    status: RunStatus
    progress: float
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestResult(msgspec.Struct, kw_only=True):
    """The metrics of one parameter set on one symbol (or the portfolio)."""

    id: int
    symbol: str | None
    params: dict[str, Any] | list[Any]
    """The full parameter set; for walk-forward results, the set chosen per window."""
    metrics: dict[str, Any]
    """Metrics as defined in docs/backtests.md: numbers (null where undefined), and the
    first and last bar (`start`, `end`)."""


class RunSummary(msgspec.Struct, kw_only=True):
    """What a run produced."""

    results: int
    """Stored results (parameter sets x symbols)."""
    best: BacktestResult | None
    """The result with the highest Sharpe ratio."""


class BacktestRunDetail(BacktestRun, kw_only=True):
    """A run with the exact spec that reproduces it and a summary of its results."""

    spec: dict[str, Any]
    walk_forward: dict[str, Any] | None
    summary: RunSummary


class EquityCurve(msgspec.Struct, kw_only=True):
    """The equity of one result, bar by bar (columns of equal length)."""

    run_id: int
    result_id: int
    symbol: str | None
    params: dict[str, Any] | list[Any]
    ts: list[datetime]
    equity: list[float | None]


class RegimeMetrics(msgspec.Struct, kw_only=True):
    """Metrics of the bars that began in one regime (`unknown`: before the first label)."""

    regime: str
    metrics: dict[str, Any]
    """The result's metrics on these bars, plus `share_of_time`."""


class ResultRegimes(msgspec.Struct, kw_only=True):
    """Per-regime metrics of one result (empty when the spec named no regime model)."""

    run_id: int
    result_id: int
    symbol: str | None
    params: dict[str, Any] | list[Any]
    regimes: list[RegimeMetrics]


# ---------------------------------------------------------------- signals


class Signal(msgspec.Struct, kw_only=True):
    """The newest target of a saved strategy on one symbol, and the regime it saw."""

    strategy: str
    symbol: str
    ts: datetime
    """The bar the target was decided at; it trades at the next bar."""
    target: float
    """Weight of equity: 1 = all in long, -0.5 = half short, 0 = flat."""
    regime: int | None
    regime_prob: float | None
    context: dict[str, Any]


class SignalsCompute(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which saved strategies to compute signals for."""

    strategy: StrategyName | None = None
    """One saved strategy (default: all)."""
