"""Fitting one symbol: a single fit, or walk-forward refits giving out-of-sample labels.

A single fit estimates parameters on the whole window: its filtered probabilities are
causal in the state inference but their parameters saw the whole sample. Walk-forward
fitting refits on an expanding (or rolling) window every `refit_every` bars and filters each
following block with parameters estimated only from earlier bars, so every label is fully
out of sample and causal: that is the series backtests and alerts should use. Each refit is
matched to the previous one (`match_states`), so regime numbers keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.regimes.base import FloatArray, RegimeModel, RegimeParams
from engine.regimes.identity import match_states

__all__ = ["SymbolRegimes", "WalkForward", "fit_symbol"]


@dataclass(frozen=True, slots=True)
class WalkForward:
    """Refit schedule: first refit after `min_train` bars, then every `refit_every` bars."""

    mode: Literal["expanding", "rolling"] = "expanding"
    min_train: int = 504
    refit_every: int = 21
    window: int | None = None
    """Rolling mode: bars per training window (default `min_train`)."""

    def __post_init__(self) -> None:
        if self.mode not in ("expanding", "rolling"):
            raise ValueError("walk-forward mode must be 'expanding' or 'rolling'")
        if self.min_train < 2 or self.refit_every < 1:
            raise ValueError("walk-forward needs min_train >= 2 and refit_every >= 1")
        if self.window is not None and self.window < 2:
            raise ValueError("a rolling window needs at least 2 bars")

    def training_slices(self, n_bars: int) -> list[tuple[int, int, int]]:
        """(train_start, refit_at, next_refit) per refit: train on [start, at), label [at, next)."""
        if n_bars <= self.min_train:
            raise ValueError(
                f"walk-forward needs more than min_train={self.min_train} bars, got {n_bars}"
            )
        points = list(range(self.min_train, n_bars, self.refit_every))
        window = self.window or self.min_train
        return [
            (
                max(0, at - window) if self.mode == "rolling" else 0,
                at,
                min(at + self.refit_every, n_bars),
            )
            for at in points
        ]


@dataclass(frozen=True, slots=True)
class SymbolRegimes:
    """The regimes of one symbol: probabilities per bar and the parameters behind them."""

    params: RegimeParams
    """The last fit (walk-forward: the most recent refit)."""
    filtered: FloatArray
    """(T, K) causal probabilities; NaN rows before the first out-of-sample label."""
    smoothed: FloatArray | None
    """(T, K) two-sided probabilities from a whole-window fit (research only)."""
    refits: int


def fit_symbol(
    model: RegimeModel,
    x: FloatArray,
    features: tuple[str, ...],
    walk_forward: WalkForward | None = None,
    *,
    smooth: bool = True,
) -> SymbolRegimes:
    """Fit `model` to one symbol's features `x` (T, F), once or walk-forward."""
    if walk_forward is None:
        params = model.fit(x, features)
        smoothed = model.smooth(params, x) if smooth else None
        return SymbolRegimes(params, model.filter(params, x), smoothed, refits=1)
    filtered = np.full((x.shape[0], model.n_states), np.nan)
    previous: RegimeParams | None = None
    for start, at, until in walk_forward.training_slices(x.shape[0]):
        params = model.fit(x[start:at], features)
        if previous is not None:
            params = match_states(previous, params)
        # Filtering from the training start keeps the forward recursion warm; only rows
        # [at, until) are kept, and each of them used bars up to itself only.
        filtered[at:until] = model.filter(params, x[start:until])[at - start :]
        previous = params
    assert previous is not None
    smoothed = None
    if smooth:
        full = match_states(previous, model.fit(x, features))
        smoothed = model.smooth(full, x)
    refits = len(walk_forward.training_slices(x.shape[0]))
    return SymbolRegimes(previous, filtered, smoothed, refits=refits)
