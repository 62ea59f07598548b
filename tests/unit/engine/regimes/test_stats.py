"""Regime names, observed spell durations and forecasts from stored statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.regimes.base import forecast
from engine.regimes.stats import forecast_probabilities, regime_durations, regime_names


def test_regimes_are_named_by_volatility_rank() -> None:
    assert regime_names("hmm", [[1e-4], [4e-4]]) == ["calm", "turbulent"]
    # a walk-forward refit may leave states out of order: names follow the variances
    assert regime_names("jump", [[4e-4, 1.0], [1e-4, 1.0], [2e-4, 1.0]]) == [
        "turbulent",
        "calm",
        "normal",
    ]
    assert regime_names("hmm", [[1.0], [2.0], [3.0], [4.0]]) == [
        "calm",
        "normal",
        "elevated",
        "turbulent",
    ]
    assert regime_names("hmm", [[float(k)] for k in range(6)])[-1] == "volatility 6/6"
    assert regime_names("hmm", [[float("nan")], [1.0]]) == ["turbulent", "calm"]


def test_rules_states_keep_their_fixed_names() -> None:
    assert regime_names("rules", [[1.0]] * 4)[3] == "high-vol downtrend"
    assert regime_names("rules", [[5.0], [1.0]]) == ["low vol", "high vol"]


def test_names_need_a_variance_table() -> None:
    with pytest.raises(ValueError, match=r"\(K, F\)"):
        regime_names("hmm", [1.0, 2.0])


def test_durations_count_spells_per_symbol_and_regime() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    regimes = {"A": [0, 0, 1, 1, 1, 0], "B": [1, 1]}
    labels = pl.DataFrame(
        {
            "symbol": [s for s, rs in regimes.items() for _ in rs],
            "ts": [start + timedelta(days=i) for rs in regimes.values() for i in range(len(rs))],
            "regime": [r for rs in regimes.values() for r in rs],
        }
    )

    durations = regime_durations(labels.reverse())  # order of rows does not matter

    assert durations.to_dicts() == [
        {"symbol": "A", "regime": 0, "spells": 2, "mean_duration": 1.5, "max_duration": 2},
        {"symbol": "A", "regime": 1, "spells": 1, "mean_duration": 3.0, "max_duration": 3},
        {"symbol": "B", "regime": 1, "spells": 1, "mean_duration": 2.0, "max_duration": 2},
    ]


def test_forecast_probabilities_renormalize_rounded_inputs() -> None:
    transmat = np.array([[0.951234, 0.048765], [0.1, 0.9]])  # rows sum to 0.999999 and 1
    path = forecast_probabilities(transmat, [0.3, 0.7], 250)

    assert path.shape == (250, 2)
    np.testing.assert_allclose(path.sum(axis=1), 1.0, atol=1e-12)
    exact = transmat / transmat.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(path[0], np.array([0.3, 0.7]) @ exact)
    np.testing.assert_allclose(path, forecast(exact, np.array([0.3, 0.7]), 250), atol=1e-12)


def test_forecast_probabilities_reject_bad_shapes_and_values() -> None:
    with pytest.raises(ValueError, match="K, K"):
        forecast_probabilities([[1.0, 0.0]], [1.0], 3)
    with pytest.raises(ValueError, match="finite"):
        forecast_probabilities([[float("nan"), 1.0], [0.5, 0.5]], [1.0, 0.0], 3)
    with pytest.raises(ValueError, match="positive mass"):
        forecast_probabilities([[0.0, 0.0], [0.5, 0.5]], [1.0, 0.0], 3)
    with pytest.raises(ValueError, match="steps"):
        forecast_probabilities([[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0], 0)
