"""Regime models by name, constructed from user parameters with clear errors."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Final

from engine.regimes.base import MODEL_NAMES, RegimeModel

__all__ = ["MODEL_CLASSES", "make_model"]

# name -> "module:Class"; imported on use (statsmodels and numba are slow to import)
MODEL_CLASSES: Final[dict[str, str]] = {
    "rules": "engine.regimes.rules:RulesModel",
    "hmm": "engine.regimes.hmm:GaussianHMM",
    "markov_switching": "engine.regimes.markov_switching:MarkovSwitching",
    "jump": "engine.regimes.jump:JumpModel",
    "changepoint": "engine.regimes.changepoint:ChangePointModel",
}
assert tuple(MODEL_CLASSES) == MODEL_NAMES


def make_model(name: str, n_states: int = 2, **params: Any) -> RegimeModel:
    """The model `name` with `n_states` regimes and its hyper-parameters `params`."""
    target = MODEL_CLASSES.get(name)
    if target is None:
        raise ValueError(f"unknown regime model {name!r}; choose one of {', '.join(MODEL_CLASSES)}")
    if n_states < 2:
        raise ValueError("a regime model needs at least 2 states")
    module, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        allowed = ", ".join(p for p in accepted if p != "n_states")
        raise ValueError(f"model {name} has no parameter(s) {unknown}; it takes {allowed}")
    model: RegimeModel = cls(n_states=n_states, **params)
    return model
