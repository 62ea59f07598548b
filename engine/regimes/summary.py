"""Chart- and table-ready shapes of a regime fit, for notebooks and reports.

Everything here is a small reshaping of a `RegimeResult` (or its labels and parameters):
contiguous regime spans for price-chart bands, long probability frames, the transition
matrix as cells, a per-regime table (returns, risk, durations) and the forecast ahead.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
import polars as pl

from engine.regimes.base import RegimeParams
from engine.regimes.registry import MODEL_CLASSES
from engine.regimes.service import RegimeResult
from engine.regimes.stats import forecast_probabilities, regime_durations, regime_names
from engine.schema import REGIME, SYMBOL, TS

__all__ = [
    "forecast_frame",
    "model_defaults",
    "probability_frame",
    "regime_spans",
    "regime_table",
    "transition_frame",
]


def model_defaults(model: str) -> dict[str, Any]:
    """The hyper-parameters of regime model `model` (besides n_states) with their defaults."""
    target = MODEL_CLASSES.get(model)
    if target is None:
        known = ", ".join(MODEL_CLASSES)
        raise ValueError(f"unknown regime model {model!r}; choose one of {known}")
    module, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls).parameters.items()
        if name != "n_states" and parameter.default is not inspect.Parameter.empty
    }


def regime_spans(labels: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive bars in one regime, per symbol: symbol, regime, start, end, bars.

    `labels` has symbol, ts, regime. A span ends where the next one starts (the last span
    at its last bar), so the spans tile each symbol's labelled history without gaps:
    what a price chart draws as background bands."""
    if labels.is_empty():
        return pl.DataFrame(
            schema={
                SYMBOL: pl.String(),
                REGIME: pl.Int32(),
                "start": labels.schema.get(TS, pl.Datetime("us", "UTC")),
                "end": labels.schema.get(TS, pl.Datetime("us", "UTC")),
                "bars": pl.UInt32(),
            }
        )
    runs = (
        labels.select(SYMBOL, TS, REGIME)
        .sort(SYMBOL, TS)
        .with_columns(
            (pl.col(REGIME) != pl.col(REGIME).shift(1))
            .fill_null(True)
            .cum_sum()
            .over(SYMBOL)
            .alias("run")
        )
    )
    spans = (
        runs.group_by(SYMBOL, "run", maintain_order=True)
        .agg(
            pl.col(REGIME).first(),
            pl.col(TS).first().alias("start"),
            pl.col(TS).last().alias("last"),
            pl.len().alias("bars"),
        )
        .with_columns(pl.col("start").shift(-1).over(SYMBOL).alias("next"))
    )
    return spans.select(
        SYMBOL,
        pl.col(REGIME).cast(pl.Int32),
        "start",
        pl.coalesce("next", "last").alias("end"),
        pl.col("bars").cast(pl.UInt32),
    )


def probability_frame(labels: pl.DataFrame) -> pl.DataFrame:
    """Labels (symbol, ts, [kind,] regime, probs) in long form: one row per bar and regime
    with its probability (columns symbol, ts, [kind,] regime, probability)."""
    keys = [c for c in (SYMBOL, TS, "kind") if c in labels.columns]
    return (
        labels.select(*keys, "probs")
        .with_columns(pl.int_ranges(0, pl.col("probs").list.len()).alias(REGIME))
        .explode("probs", REGIME)
        .select(*keys, pl.col(REGIME).cast(pl.Int32), pl.col("probs").alias("probability"))
    )


def transition_frame(params: RegimeParams) -> pl.DataFrame:
    """The transition matrix as cells: from_regime, to_regime, probability (row-stochastic)."""
    k = params.n_states
    origin, destination = np.divmod(np.arange(k * k), k)
    return pl.DataFrame(
        {
            "from_regime": origin.astype(np.int32),
            "to_regime": destination.astype(np.int32),
            "probability": np.asarray(params.transmat, dtype=np.float64).ravel(),
        }
    )


def regime_table(result: RegimeResult, symbol: str) -> pl.DataFrame:
    """Per regime of `symbol`: name, share of time, annualized mean return, volatility and
    Sharpe (over the causal filtered labels), the model's expected duration and the
    realized spells (count, mean and longest length in bars)."""
    params = result.params[symbol]
    names = regime_names(params.model, params.variances)
    filtered = result.labels.filter((pl.col(SYMBOL) == symbol) & (pl.col("kind") == "filtered"))
    model = pl.DataFrame(
        {
            REGIME: np.arange(params.n_states, dtype=np.int32),
            "name": names,
            "expected_duration": params.expected_durations,
        }
    )
    stats = result.statistics.filter(pl.col(SYMBOL) == symbol).drop(SYMBOL)
    spells = regime_durations(filtered).filter(pl.col(SYMBOL) == symbol).drop(SYMBOL)
    return (
        model.join(stats.with_columns(pl.col(REGIME).cast(pl.Int32)), on=REGIME, how="left")
        .join(spells.with_columns(pl.col(REGIME).cast(pl.Int32)), on=REGIME, how="left")
        .select(
            REGIME,
            "name",
            "bars",
            "share_of_time",
            "mean_return",
            "volatility",
            "sharpe",
            "expected_duration",
            "spells",
            "mean_duration",
            "max_duration",
        )
        .sort(REGIME)
    )


def forecast_frame(params: RegimeParams, probs: list[float], horizon: int) -> pl.DataFrame:
    """Regime probabilities 1..`horizon` bars ahead of the current probabilities `probs`:
    step, regime, name, probability (each step's probabilities sum to 1)."""
    ahead = forecast_probabilities(params.transmat, probs, horizon)
    names = regime_names(params.model, params.variances)
    steps, regimes = np.divmod(np.arange(ahead.size), params.n_states)
    return pl.DataFrame(
        {
            "step": (steps + 1).astype(np.int32),
            REGIME: regimes.astype(np.int32),
            "name": [names[r] for r in regimes],
            "probability": ahead.ravel(),
        }
    )
