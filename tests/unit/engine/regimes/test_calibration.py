"""Calibration of regime probabilities on synthetic data with known regimes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.features.returns import log_return
from engine.providers.synthetic import SyntheticBarsQuery, simulate
from engine.regimes.hmm import GaussianHMM
from engine.regimes.stats import brier_score, reliability


def test_brier_score_bounds() -> None:
    truth = np.array([0, 1, 1])
    assert brier_score(np.eye(2)[truth], truth) == 0.0
    assert brier_score(np.eye(2)[1 - truth], truth) == 2.0
    assert brier_score(np.full((3, 2), 0.5), truth) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(T, K\)"):
        brier_score(np.ones(3), truth)


def test_hmm_filtered_probabilities_are_calibrated_on_synthetic_data() -> None:
    bars = simulate(SyntheticBarsQuery(symbols=("SYN0000",), n_days=4000, seed=7))
    frame = bars.with_columns(log_return().alias("r")).drop_nulls("r")
    x = frame.select("r").to_numpy()
    truth = frame["regime"].to_numpy()
    model = GaussianHMM(n_states=2)
    probs = model.filter(model.fit(x, ("log_return",)), x)

    score = brier_score(probs, truth)
    table = reliability(probs, truth, bins=5).filter(pl.col("count") >= 200)

    assert score < 0.2  # a constant 50/50 forecast scores 0.5
    assert (table["predicted"] - table["observed"]).abs().max() < 0.1
