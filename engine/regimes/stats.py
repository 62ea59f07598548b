"""Regime statistics from labels: per-regime returns and risk, the current regime per symbol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl

from engine.regimes.base import FloatArray, RegimeParams, forecast
from engine.schema import REGIME, SYMBOL, TS

__all__ = [
    "brier_score",
    "current_regimes",
    "forecast_probabilities",
    "model_statistics",
    "regime_durations",
    "regime_names",
    "regime_statistics",
    "reliability",
]

PROBS = "probs"

# Names by volatility rank (calm first) for K regimes; more regimes get "volatility i/K".
_VOLATILITY_NAMES: Final[dict[int, tuple[str, ...]]] = {
    2: ("calm", "turbulent"),
    3: ("calm", "normal", "turbulent"),
    4: ("calm", "normal", "elevated", "turbulent"),
    5: ("very calm", "calm", "normal", "elevated", "turbulent"),
}


def regime_statistics(
    labels: pl.DataFrame, returns: pl.DataFrame, *, periods_per_year: int = 252
) -> pl.DataFrame:
    """Per symbol and regime: bars, share of time, annualized mean return, volatility, Sharpe.

    `labels` has symbol, ts, regime (use the causal filtered labels); `returns` has symbol,
    ts and `log_return`. Returns are those of the bar the label belongs to.
    """
    joined = labels.select(SYMBOL, TS, REGIME).join(
        returns.select(SYMBOL, TS, "log_return"), on=[SYMBOL, TS], how="inner"
    )
    annual = float(periods_per_year)
    return (
        joined.group_by(SYMBOL, REGIME)
        .agg(
            pl.len().alias("bars"),
            (pl.col("log_return").mean() * annual).alias("mean_return"),
            (pl.col("log_return").std() * np.sqrt(annual)).alias("volatility"),
        )
        .with_columns(
            (pl.col("bars") / pl.col("bars").sum().over(SYMBOL)).alias("share_of_time"),
            (pl.col("mean_return") / pl.col("volatility")).alias("sharpe"),
        )
        .sort(SYMBOL, REGIME)
    )


def current_regimes(filtered: pl.DataFrame) -> pl.DataFrame:
    """Per symbol: the last labelled bar, its regime, that regime's probability, and how many
    consecutive bars (including the last) the symbol has been in it."""
    runs = filtered.sort(SYMBOL, TS).with_columns(
        (pl.col(REGIME) != pl.col(REGIME).shift(1))
        .fill_null(True)
        .cum_sum()
        .over(SYMBOL)
        .alias("run")
    )
    return (
        runs.group_by(SYMBOL, maintain_order=True)
        .agg(
            pl.col(TS).last(),
            pl.col(REGIME).last(),
            pl.col(PROBS).last().list.get(pl.col(REGIME).last()).alias("probability"),
            (pl.col("run") == pl.col("run").last()).sum().alias("days_in_regime"),
        )
        .sort(SYMBOL)
    )


def model_statistics(params: RegimeParams) -> dict[str, object]:
    """A fit's summary as JSON: likelihood, AIC/BIC, transition matrix, expected durations."""
    return {
        "model": params.model,
        "features": list(params.features),
        "n_states": params.n_states,
        "n_obs": params.n_obs,
        "loglik": params.loglik,
        "aic": params.aic,
        "bic": params.bic,
        "transmat": params.transmat.round(6).tolist(),
        "expected_durations": params.expected_durations.round(3).tolist(),
        "means": params.means.tolist(),
        "variances": params.variances.tolist(),
    }


def regime_names(model: str, variances: Sequence[Sequence[float]] | FloatArray) -> list[str]:
    """A human name per regime: the rules model's fixed states, else the rank of each
    regime's return volatility (`variances` (K, F), column 0 the return): "calm" for the
    quietest up to "turbulent" for the wildest. Regimes without a finite variance rank last."""
    table = np.asarray(variances, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1:
        raise ValueError("variances must be (K, F) with K >= 1")
    n_states = table.shape[0]
    if model == "rules":
        from engine.regimes.rules import RULES_STATE_NAMES  # states fixed by construction

        if n_states in RULES_STATE_NAMES:
            return list(RULES_STATE_NAMES[n_states])
    volatility = np.where(np.isfinite(table[:, 0]), table[:, 0], np.inf)
    rank = np.empty(n_states, dtype=np.int64)
    rank[np.argsort(volatility, kind="stable")] = np.arange(n_states)
    names = _VOLATILITY_NAMES.get(n_states)
    if names is None:
        return [f"volatility {int(r) + 1}/{n_states}" for r in rank]
    return [names[int(r)] for r in rank]


def regime_durations(filtered: pl.DataFrame) -> pl.DataFrame:
    """Per symbol and regime, from labels (symbol, ts, regime): how many spells (runs of
    consecutive bars in the regime) there were, their mean and longest length in bars."""
    spells = (
        filtered.sort(SYMBOL, TS)
        .with_columns(
            (pl.col(REGIME) != pl.col(REGIME).shift(1))
            .fill_null(True)
            .cum_sum()
            .over(SYMBOL)
            .alias("spell")
        )
        .group_by(SYMBOL, "spell")
        .agg(pl.col(REGIME).first(), pl.len().alias("bars"))
    )
    return (
        spells.group_by(SYMBOL, REGIME)
        .agg(
            pl.len().alias("spells"),
            pl.col("bars").mean().alias("mean_duration"),
            pl.col("bars").max().alias("max_duration"),
        )
        .sort(SYMBOL, REGIME)
    )


def forecast_probabilities(
    transmat: Sequence[Sequence[float]] | FloatArray,
    probs: Sequence[float] | FloatArray,
    horizon: int,
) -> FloatArray:
    """Regime probabilities 1..horizon bars ahead (horizon, K): the current probabilities
    `probs` (K,) propagated through the transition matrix (K, K). Both are renormalized
    first (stored matrices are rounded), so every row sums to 1."""
    matrix = np.asarray(transmat, dtype=np.float64)
    current = np.asarray(probs, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or current.shape != matrix[0].shape:
        raise ValueError("transmat must be (K, K) and probs (K,)")
    if not (np.isfinite(matrix).all() and np.isfinite(current).all()):
        raise ValueError("transmat and probs must be finite")
    matrix = np.clip(matrix, 0.0, None)
    current = np.clip(current, 0.0, None)
    rows = matrix.sum(axis=1, keepdims=True)
    if (rows <= 0).any() or current.sum() <= 0:
        raise ValueError("every transmat row and probs need positive mass")
    out = forecast(matrix / rows, current / current.sum(), horizon)
    return np.asarray(out / out.sum(axis=1, keepdims=True), dtype=np.float64)


def brier_score(probs: np.ndarray, truth: np.ndarray) -> float:
    """Multi-class Brier score of regime probabilities (T, K) against true regimes (T,):
    mean squared distance to the one-hot truth; 0 is perfect, 2 the worst."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != truth.shape[0]:
        raise ValueError("probs must be (T, K) and truth (T,)")
    onehot = np.eye(probs.shape[1])[truth]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def reliability(probs: np.ndarray, truth: np.ndarray, *, bins: int = 10) -> pl.DataFrame:
    """Calibration table: per probability bin (all regimes pooled), the mean predicted
    probability, the observed frequency of that regime, and the count. A calibrated model
    has predicted close to observed in every well-populated bin."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    predicted = probs.ravel()
    observed = (np.arange(probs.shape[1])[None, :] == truth[:, None]).ravel().astype(np.float64)
    edges = np.clip((predicted * bins).astype(np.int64), 0, bins - 1)
    return (
        pl.DataFrame({"bin": edges, "predicted": predicted, "observed": observed})
        .group_by("bin")
        .agg(pl.col("predicted").mean(), pl.col("observed").mean(), pl.len().alias("count"))
        .sort("bin")
    )
