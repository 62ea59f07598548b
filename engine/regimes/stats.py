"""Regime statistics from labels: per-regime returns and risk, the current regime per symbol."""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.regimes.base import RegimeParams
from engine.schema import REGIME, SYMBOL, TS

__all__ = [
    "brier_score",
    "current_regimes",
    "model_statistics",
    "regime_statistics",
    "reliability",
]

PROBS = "probs"


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
