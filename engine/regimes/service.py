"""Fit regimes over many symbols: features, per-symbol fits in a process pool, labels, stats.

`fit_regimes(bars, spec)` is what the CLI, the scheduler and the notebooks call. Fits are
CPU-bound and independent per symbol, so they fan out over a process pool (spawned workers:
forking a process that runs Polars' thread pool can deadlock).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine.features.pipeline import with_features
from engine.features.returns import log_return
from engine.regimes.base import FloatArray, RegimeParams
from engine.regimes.fitting import SymbolRegimes, WalkForward, fit_symbol
from engine.regimes.registry import make_model
from engine.regimes.stats import current_regimes, regime_statistics
from engine.schema import SYMBOL, TS

__all__ = ["RegimeResult", "RegimeSpec", "fit_regimes", "regime_features"]

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class RegimeSpec:
    """What to fit: model, number of regimes, features (the first is the return series the
    state order is defined on), model parameters, and an optional walk-forward schedule."""

    model: str
    n_states: int = 2
    features: tuple[str, ...] = ("log_return",)
    params: Mapping[str, Any] = field(default_factory=dict)
    walk_forward: WalkForward | None = None
    smooth: bool = True

    def __post_init__(self) -> None:
        make_model(self.model, self.n_states, **self.params)  # fail early on bad specs
        if not self.features:
            raise ValueError("at least one feature is required")


@dataclass(slots=True)
class RegimeResult:
    """Fitted regimes of many symbols."""

    spec: RegimeSpec
    params: dict[str, RegimeParams]
    labels: pl.DataFrame
    """symbol, ts, kind ('filtered' | 'smoothed'), regime, probs (list of K floats)."""
    statistics: pl.DataFrame
    current: pl.DataFrame
    failures: dict[str, str]
    """Symbols that could not be fitted, with the reason."""


def regime_features(bars: pl.DataFrame, features: tuple[str, ...]) -> pl.DataFrame:
    """symbol, ts and the named features, warm-up rows (any null feature) dropped."""
    computed = with_features(bars.lazy(), list(features)).select(SYMBOL, TS, *features)
    return computed.drop_nulls().filter(pl.all_horizontal(pl.col(features).is_finite())).collect()


def _fit_task(
    spec: RegimeSpec, symbol: str, x: FloatArray
) -> tuple[str, SymbolRegimes | None, str | None]:
    try:
        model = make_model(spec.model, spec.n_states, **spec.params)
        return (
            symbol,
            fit_symbol(model, x, spec.features, spec.walk_forward, smooth=spec.smooth),
            None,
        )
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
        return symbol, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _labels(ts: np.ndarray, symbol: str, kind: str, probs: FloatArray) -> pl.DataFrame:
    keep = ~np.isnan(probs).any(axis=1)
    return pl.DataFrame(
        {
            SYMBOL: [symbol] * int(keep.sum()),
            TS: ts[keep],
            "kind": [kind] * int(keep.sum()),
            "regime": probs[keep].argmax(axis=1).astype(np.int32),
            "probs": pl.Series(probs[keep]).cast(pl.List(pl.Float64)),
        }
    )


def fit_regimes(
    bars: pl.DataFrame,
    spec: RegimeSpec,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> RegimeResult:
    """Regimes of every symbol in `bars` (canonical bar frame) under `spec`."""
    features = regime_features(bars, spec.features)
    if features.is_empty():
        raise ValueError("no bars with complete features: too little history?")
    groups = features.partition_by(SYMBOL, as_dict=True, maintain_order=True)
    tasks = [
        (
            str(key[0]),
            frame[TS].to_numpy(),
            frame.select(spec.features).to_numpy().astype(np.float64),
        )
        for key, frame in groups.items()
    ]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    outcomes: list[tuple[str, SymbolRegimes | None, str | None]] = []
    if workers <= 1 or len(tasks) < 4:
        for index, (symbol, _, x) in enumerate(tasks, 1):
            outcomes.append(_fit_task(spec, symbol, x))
            if progress:
                progress(index, len(tasks), symbol)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_fit_task, spec, symbol, x) for symbol, _, x in tasks]
            for index, future in enumerate(futures, 1):
                outcomes.append(future.result())
                if progress:
                    progress(index, len(tasks), outcomes[-1][0])
    times = {symbol: ts for symbol, ts, _ in tasks}
    params: dict[str, RegimeParams] = {}
    failures: dict[str, str] = {}
    frames: list[pl.DataFrame] = []
    for symbol, fitted, error in outcomes:
        if fitted is None:
            failures[symbol] = error or "fit failed"
            continue
        params[symbol] = fitted.params
        frames.append(_labels(times[symbol], symbol, "filtered", fitted.filtered))
        if fitted.smoothed is not None:
            frames.append(_labels(times[symbol], symbol, "smoothed", fitted.smoothed))
    if not frames:
        reasons = "; ".join(f"{s}: {r}" for s, r in list(failures.items())[:5])
        raise ValueError(f"no symbol could be fitted ({reasons})")
    labels = pl.concat(frames).with_columns(pl.col(TS).cast(pl.Datetime("us", "UTC")))
    filtered = labels.filter(pl.col("kind") == "filtered")
    returns = bars.select(SYMBOL, TS, log_return().alias("log_return"))
    return RegimeResult(
        spec=spec,
        params=params,
        labels=labels,
        statistics=regime_statistics(filtered, returns),
        current=current_regimes(filtered),
        failures=failures,
    )
