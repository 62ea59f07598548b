"""Request and response types of the regime routes (and the parameters of its jobs)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from engine.features.names import FEATURE_NAMES
from engine.regimes.base import MODEL_NAMES

__all__ = [
    "SYMBOL_PATTERN",
    "FitParams",
    "LabelKind",
    "ModelParameter",
    "RefitParams",
    "RegimeForecast",
    "RegimeForecastStep",
    "RegimeLabel",
    "RegimeModelInfo",
    "RegimeNow",
    "RegimeRun",
    "RegimeRunSummary",
    "RegimeSnapshot",
    "RegimeStatistics",
    "RegimeStats",
    "RunStatus",
    "WalkForwardOptions",
]

SYMBOL_PATTERN: Final = r"^[A-Za-z0-9^][A-Za-z0-9._^=/:-]{0,39}$"
MAX_FIT_SYMBOLS: Final = 500

LabelKind = Literal["filtered", "smoothed"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Symbol = Annotated[
    str,
    Meta(pattern=SYMBOL_PATTERN, description="a stored symbol, e.g. SPX", examples=["SPX"]),
]
# A model hyper-parameter value as JSON allows it (the model checks its type and range).
ParamValue = str | int | float | bool | list[float] | None


class WalkForwardOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Out-of-sample refits: first after `min_train` bars, then every `refit_every` bars."""

    mode: Literal["expanding", "rolling"] = "expanding"
    min_train: Annotated[int, Meta(ge=2, le=100_000)] = 504
    refit_every: Annotated[int, Meta(ge=1, le=100_000)] = 21
    window: Annotated[int, Meta(ge=2, le=100_000)] | None = None
    """Rolling mode: bars per training window (default `min_train`)."""


class FitParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A regime fit: model, symbols with stored bars, regimes, features, window."""

    model: Annotated[str, Meta(description=f"one of {', '.join(MODEL_NAMES)}")]
    symbols: Annotated[list[Symbol], Meta(min_length=1, max_length=MAX_FIT_SYMBOLS)]
    n_states: Annotated[int, Meta(ge=2, le=8)] = 2
    features: Annotated[
        list[Annotated[str, Meta(max_length=64)]],
        Meta(
            min_length=1,
            max_length=len(FEATURE_NAMES),
            description="features, the first is the return: " + ", ".join(FEATURE_NAMES),
        ),
    ] = msgspec.field(default_factory=lambda: ["log_return"])
    params: Annotated[
        dict[Annotated[str, Meta(max_length=64)], ParamValue],
        Meta(max_length=16, description="model hyper-parameters (GET /regimes/models)"),
    ] = msgspec.field(default_factory=dict)
    start: date | None = None
    """First day of bars to fit on (UTC, inclusive)."""
    end: date | None = None
    """Last day of bars to fit on (UTC, inclusive)."""
    interval: Annotated[str, Meta(max_length=8)] = "1d"
    walk_forward: WalkForwardOptions | None = None


class RefitParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The scheduled refit; empty fields take the settings (regime model, states, watchlist)."""

    model: str | None = None
    n_states: Annotated[int, Meta(ge=2, le=8)] | None = None
    symbols: list[Symbol] | None = None


class ModelParameter(msgspec.Struct, kw_only=True):
    """One hyper-parameter of a regime model."""

    name: str
    type: str
    default: Any = None
    choices: list[str] | None = None


class RegimeModelInfo(msgspec.Struct, kw_only=True):
    """A regime model that can be fitted, with its hyper-parameters and their defaults."""

    name: str
    description: str
    n_states: list[int]
    """Numbers of regimes it supports."""
    default_n_states: int
    causal_filter: bool
    """Whether its filtered labels are truly online (use only the bars up to each one)."""
    parameters: list[ModelParameter]


class RegimeRunSummary(msgspec.Struct, kw_only=True):
    """A regime run as listed: what was fitted and how it went."""

    id: int
    model: str
    n_states: int
    interval: str
    symbols: list[str]
    status: RunStatus
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    train_start: datetime | None = None
    train_end: datetime | None = None


class RegimeRun(RegimeRunSummary, kw_only=True):
    """A regime run with its parameters and statistics (per symbol: the fitted model,
    per-regime return statistics, the current regime, failures)."""

    params: dict[str, Any]
    stats: dict[str, Any]


class RegimeLabel(msgspec.Struct, kw_only=True):
    """The regime of one bar and the probability of each regime."""

    ts: datetime
    regime: int
    name: str | None
    probability: float
    """Probability of `regime`."""
    probs: list[float]
    run_id: int


class RegimeNow(msgspec.Struct, kw_only=True):
    """A symbol's current regime: its latest labelled bar (filtered, causal)."""

    symbol: str
    ts: datetime
    regime: int
    name: str | None
    probability: float
    days_in_regime: int
    """Consecutive bars (days for daily bars) in this regime, the latest included."""
    n_states: int
    run_id: int


class RegimeSnapshot(msgspec.Struct, kw_only=True):
    """The current regime across a watchlist. Symbols without a succeeded run of the model
    are listed in `missing`, and `detail` says how to fit them (never an error)."""

    model: str
    items: list[RegimeNow]
    missing: list[str]
    detail: str | None = None


class RegimeStatistics(msgspec.Struct, kw_only=True):
    """One regime of a symbol: how often, how long, and how returns behaved in it."""

    regime: int
    name: str | None
    bars: int
    share_of_time: float
    mean_return: float | None
    """Annualized mean log return in the regime."""
    volatility: float | None
    """Annualized volatility of log returns in the regime."""
    sharpe: float | None
    expected_duration: float | None
    """Bars the model expects a spell to last: 1 / (1 - p_ii)."""
    spells: int
    mean_duration: float | None
    """Observed mean spell length in bars (filtered labels)."""
    max_duration: int | None


class RegimeStats(msgspec.Struct, kw_only=True):
    """Per-regime statistics and the fitted transition matrix of one symbol in one run."""

    run_id: int
    symbol: str
    model: str
    n_states: int
    features: list[str]
    interval: str
    train_start: datetime | None
    train_end: datetime | None
    n_obs: int | None
    loglik: float | None
    aic: float | None
    bic: float | None
    transition_matrix: list[list[float]]
    """Row i: probabilities of moving from regime i to each regime at the next bar."""
    regimes: list[RegimeStatistics]


class RegimeForecastStep(msgspec.Struct, kw_only=True):
    """Regime probabilities `step` bars after the latest labelled bar."""

    step: int
    probs: list[float]
    regime: int
    """The most likely regime."""


class RegimeForecast(msgspec.Struct, kw_only=True):
    """Regime probabilities for the next bars: the latest filtered probabilities
    propagated through the fitted transition matrix."""

    run_id: int
    symbol: str
    model: str
    n_states: int
    as_of: datetime
    """The latest labelled bar the forecast starts from."""
    current: list[float]
    names: list[str]
    steps: list[RegimeForecastStep]
