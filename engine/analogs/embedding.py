"""Market-state embeddings: one fixed-length, scale-free vector per (symbol, bar).

A state describes the trailing `window` bars of one symbol in units of its own long-run
volatility (`sigma`, the standard deviation of daily log returns over the previous 252
bars), so states of different symbols and decades are comparable. The 32 components, in
groups whose weights the spec sets (a group's components are scaled by
`weight / sqrt(group size)`, so a weight says how much the whole group counts):

- path (16): the log return from `j` bars ago to now over `sigma * sqrt(j)`, for 16
  look-backs `j` spread evenly over the window: the shape of the recent path;
- volatility (3): log of realized volatility over 5 and 21 bars and the window, over sigma;
- trend (3): distance of the log price from its 10-bar, 21-bar and window-bar mean;
- drawdown (2): log distance below the window's and the year's highest close;
- shape (4): skew and share of up bars over the window, 126- and 252-bar momentum;
- regime (4): filtered probabilities of the spec's regime model (0.25 each when unknown).

Everything is causal: the state at bar t uses bars up to t only. Components are clipped to
[-10, 10], and a bar whose state is not finite (too little history, a flat price) has none.
Searches compare states by Euclidean (L2) distance: magnitudes matter (a 3-sigma sell-off
is not like a 1-sigma one), which cosine distance would ignore.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from engine.schema import CLOSE, SYMBOL, TS

__all__ = [
    "DEFAULT_WEIGHTS",
    "DIMENSION",
    "EMBEDDING",
    "GROUPS",
    "LAYOUT_VERSION",
    "SIGMA_WINDOW",
    "EmbeddingSpec",
    "path_lags",
    "state_vectors",
]

DIMENSION: Final = 32  # the width of market_states.embedding (vector(32))
LAYOUT_VERSION: Final = 1  # bump when the components' definitions change
SIGMA_WINDOW: Final = 252
EMBEDDING: Final = "embedding"
PROBS: Final = "probs"
_PATH_POINTS: Final = 16
_REGIME_SLOTS: Final = 4
_CLIP: Final = 10.0

GROUPS: Final[dict[str, int]] = {
    "path": _PATH_POINTS,
    "volatility": 3,
    "trend": 3,
    "drawdown": 2,
    "shape": 4,
    "regime": _REGIME_SLOTS,
}
DEFAULT_WEIGHTS: Final[dict[str, float]] = {
    "path": 2.0,
    "volatility": 1.0,
    "trend": 1.0,
    "drawdown": 1.0,
    "shape": 0.5,
    "regime": 1.0,
}
assert sum(GROUPS.values()) == DIMENSION


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """What a state vector is built from; `version` names it in `market_states`."""

    window: int = 63
    """trailing bars the path, trend and drawdown components describe (16 to 252)"""
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """weight per component group (0 leaves the group out)"""
    regime_model: str | None = "hmm"
    """regime model whose filtered probabilities fill the regime group (None: no group)"""

    def __post_init__(self) -> None:
        if not 16 <= self.window <= SIGMA_WINDOW:
            raise ValueError(f"window must be between 16 and {SIGMA_WINDOW} bars")
        unknown = sorted(set(self.weights) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown component groups {unknown}; known: {sorted(GROUPS)}")
        bad = [g for g, w in self.weights.items() if not (math.isfinite(w) and w >= 0)]
        if bad:
            raise ValueError(f"weights must be finite and >= 0 (bad: {sorted(bad)})")
        if not any(self.weight(g) > 0 for g in GROUPS):
            raise ValueError("at least one component group needs a weight above 0")

    def weight(self, group: str) -> float:
        """The group's weight (0 for the regime group when there is no regime model)."""
        if group == "regime" and self.regime_model is None:
            return 0.0
        return float(self.weights.get(group, 0.0))

    @property
    def lookback(self) -> int:
        """Bars of history a state needs before its own bar (sigma's returns, then one)."""
        return SIGMA_WINDOW + 1

    @property
    def version(self) -> str:
        """`v<layout>-w<window>-<hash of weights and regime model>`, e.g. `v1-w63-5d41402a`."""
        weights = ",".join(f"{g}={self.weight(g):g}" for g in GROUPS)
        digest = hashlib.sha256(f"{weights};{self.regime_model}".encode()).hexdigest()[:8]
        return f"v{LAYOUT_VERSION}-w{self.window}-{digest}"


def path_lags(window: int) -> list[int]:
    """The 16 look-backs (bars) of the path components, evenly spread over `window`."""
    return [max(1, round(window * k / _PATH_POINTS)) for k in range(1, _PATH_POINTS + 1)]


def _components(spec: EmbeddingSpec) -> dict[str, list[pl.Expr]]:
    window = spec.window
    log_close = pl.col(CLOSE).log()
    ret = log_close.diff()
    # sigma of the previous SIGMA_WINDOW returns: each component is in units of it
    sigma = ret.rolling_std(SIGMA_WINDOW).shift(1)

    def per_sigma(expr: pl.Expr, bars: int) -> pl.Expr:
        return expr / (sigma * math.sqrt(bars))

    def vol_ratio(bars: int) -> pl.Expr:
        return (ret.rolling_std(bars) / sigma).log()

    return {
        "path": [per_sigma(log_close - log_close.shift(j), j) for j in path_lags(window)],
        "volatility": [vol_ratio(5), vol_ratio(21), vol_ratio(window)],
        "trend": [per_sigma(log_close - log_close.rolling_mean(n), n) for n in (10, 21, window)],
        "drawdown": [
            per_sigma(log_close - log_close.rolling_max(window), window),
            per_sigma(log_close - log_close.rolling_max(SIGMA_WINDOW), SIGMA_WINDOW),
        ],
        "shape": [
            ret.rolling_skew(window) / 3.0,
            2.0 * (ret > 0).cast(pl.Float64).rolling_mean(window) - 1.0,
            per_sigma(log_close - log_close.shift(126), 126),
            per_sigma(log_close - log_close.shift(SIGMA_WINDOW), SIGMA_WINDOW),
        ],
    }


def _regime_components(has_probs: bool) -> list[pl.Expr]:
    if not has_probs:
        return [pl.lit(1.0 / _REGIME_SLOTS)] * _REGIME_SLOTS
    probs = pl.col(PROBS)
    n = probs.list.len()
    return [
        pl.when(probs.is_null())
        .then(1.0 / _REGIME_SLOTS)
        .when(n > slot)
        .then(probs.list.get(slot, null_on_oob=True))
        .otherwise(0.0)
        for slot in range(_REGIME_SLOTS)
    ]


def state_vectors(
    bars: pl.DataFrame | pl.LazyFrame,
    spec: EmbeddingSpec,
    regimes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """symbol, ts, embedding (Array(Float32, 32)) for every bar with a finite state.

    `bars` needs symbol, ts and close; `regimes` (symbol, ts, probs: list of floats) gives
    the regime group, which is 0.25 per slot on bars it does not cover.
    """
    lf = bars.lazy().select(SYMBOL, TS, pl.col(CLOSE).cast(pl.Float64)).sort(SYMBOL, TS)
    if regimes is not None and spec.weight("regime") > 0:
        lf = lf.join(
            regimes.lazy().select(SYMBOL, TS, pl.col(PROBS).cast(pl.List(pl.Float64))),
            on=[SYMBOL, TS],
            how="left",
            maintain_order="left",  # the components below read rows in time order
        )
        has_probs = True
    else:
        has_probs = False
    groups = _components(spec)
    groups["regime"] = _regime_components(has_probs)
    names: list[str] = []
    columns: list[pl.Expr] = []
    for group, exprs in groups.items():
        scale = spec.weight(group) / math.sqrt(GROUPS[group])
        for index, expr in enumerate(exprs):
            name = f"{group}_{index}"
            names.append(name)
            column = expr if group == "regime" else expr.over(SYMBOL)
            columns.append((column.clip(-_CLIP, _CLIP) * scale).alias(name))
    valid = pl.all_horizontal(pl.col(n).is_finite() for n in names)
    warm = pl.int_range(pl.len()).over(SYMBOL) >= spec.lookback
    return (
        lf.with_columns(columns)
        .with_columns(pl.col(n).fill_nan(None) for n in names)
        .filter(warm & valid.fill_null(False))
        .select(
            SYMBOL,
            TS,
            pl.concat_arr(names).cast(pl.Array(pl.Float32, DIMENSION)).alias(EMBEDDING),
        )
        .collect()
    )
