"""Change points: BOCPD against brute-force enumeration and planted variance changes,
ruptures' offline segments, the change point regime model, and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp
from sklearn.metrics import balanced_accuracy_score

from engine.providers.sample import fetch_bars
from engine.providers.synthetic import simulate_returns
from engine.regimes.base import FloatArray, RegimeModel, RegimeParams
from engine.regimes.changepoint import (
    ChangePointModel,
    NormalGammaPrior,
    bocpd,
    offline_change_points,
    segment_statistics,
)
from engine.regimes.registry import make_model

RET = ("log_return",)
UP, DOWN = 500, 800


def planted(seed: int) -> FloatArray:
    """Returns whose volatility triples at bar 500 and falls back at bar 800."""
    rng = np.random.default_rng(seed)
    pieces = [rng.normal(0, 0.01, UP), rng.normal(0, 0.03, DOWN - UP), rng.normal(0, 0.01, 300)]
    return np.concatenate(pieces)


def synthetic_returns(
    n_states: int, n_days: int = 3000, seed: int = 3
) -> tuple[FloatArray, np.ndarray]:
    """Daily log returns (T, 1) of one synthetic symbol and its true regimes (T,)."""
    x, regimes = simulate_returns(n_states, n_days, seed=seed)
    return x[0], regimes


def log_marginal(segment: FloatArray, prior: NormalGammaPrior) -> float:
    """log p(segment) under the Normal-Gamma model, in closed form."""
    n, mean = segment.size, segment.mean()
    kappa, alpha = prior.kappa + n, prior.alpha + n / 2
    beta = (
        prior.beta
        + 0.5 * ((segment - mean) ** 2).sum()
        + prior.kappa * n * (mean - prior.mean) ** 2 / (2 * kappa)
    )
    return float(
        gammaln(alpha)
        - gammaln(prior.alpha)
        + prior.alpha * math.log(prior.beta)
        - alpha * math.log(beta)
        + 0.5 * (math.log(prior.kappa) - math.log(kappa))
        - n / 2 * math.log(2 * math.pi)
    )


def enumerate_segmentations(
    x: FloatArray, hazard: float, prior: NormalGammaPrior
) -> tuple[float, FloatArray]:
    """log p(x) and P(last run length = r | x) by summing over every segmentation."""
    terms, last_lengths = [], []
    for opens in itertools.product((False, True), repeat=x.size - 1):
        starts = [0, *(t + 1 for t, new in enumerate(opens) if new)]
        bounds = [*starts, x.size]
        n_changes = len(starts) - 1
        log_p = n_changes * math.log(hazard) + (x.size - 1 - n_changes) * math.log1p(-hazard)
        log_p += sum(log_marginal(x[a:b], prior) for a, b in itertools.pairwise(bounds))
        terms.append(log_p)
        last_lengths.append(x.size - starts[-1])
    evidence = float(logsumexp(terms))
    posterior = np.zeros(x.size)
    np.add.at(posterior, np.array(last_lengths) - 1, np.exp(np.array(terms) - evidence))
    return evidence, posterior


def test_bocpd_equals_enumeration() -> None:
    x = np.array([0.3, -0.1, 2.5, 3.1, -2.2, 0.2, 0.1])
    prior = NormalGammaPrior(mean=0.0, kappa=0.5, alpha=2.0, beta=1.0)
    result = bocpd(x, hazard=0.2, prior=prior)
    evidence, posterior = enumerate_segmentations(x, 0.2, prior)
    assert result.log_evidence == pytest.approx(evidence, rel=1e-12)
    np.testing.assert_allclose(result.run_length_posterior, posterior, atol=1e-12)
    for t in range(1, x.size):  # P(bar t opens a segment | bars ..t)
        assert result.change_prob[t] == pytest.approx(
            enumerate_segmentations(x[: t + 1], 0.2, prior)[1][0], rel=1e-10
        )
    assert result.current_segment_start == x.size - 1 - int(np.argmax(posterior))


def test_bocpd_detects_planted_variance_changes_within_a_few_bars() -> None:
    delays_up: list[int] = []
    delays_down: list[int] = []
    for seed in range(5):
        x = planted(seed)
        result = bocpd(x, hazard=1 / 250)
        bars = np.arange(x.size)
        for change, delays in ((UP, delays_up), (DOWN, delays_down)):
            # first bar whose most probable segment starts within 5 bars of the change
            found = np.flatnonzero((bars >= change) & (np.abs(result.segment_start - change) <= 5))
            delays.append(int(found[0]) - change)
        # a sudden rise in volatility shows up at once in P(change at t)
        assert result.change_prob[UP : UP + 5].max() > 10 * np.median(result.change_prob)
        # and a month later the segment is still dated right
        assert result.segment_start[DOWN + 21] == pytest.approx(DOWN, abs=5)
    assert max(delays_up) <= 8 and np.median(delays_up) <= 3
    assert max(delays_down) <= 12 and np.median(delays_down) <= 8


def test_bocpd_is_causal_and_truncation_approximates() -> None:
    x = planted(0)
    full = bocpd(x, prior=NormalGammaPrior(0.0, 1.0, 1.5, 5e-5))
    head = bocpd(x[:600], prior=NormalGammaPrior(0.0, 1.0, 1.5, 5e-5))
    np.testing.assert_array_equal(full.run_length_map[:600], head.run_length_map)
    np.testing.assert_array_equal(full.change_prob[:600], head.change_prob)
    truncated = bocpd(x, prior=NormalGammaPrior(0.0, 1.0, 1.5, 5e-5), max_run_length=400)
    assert truncated.run_length_posterior.size <= 401
    assert full.run_length_posterior.sum() == pytest.approx(1.0)
    representable = full.run_length_map < 400
    same = truncated.run_length_map == full.run_length_map
    assert same[representable].mean() > 0.99


def test_offline_change_points_find_the_planted_changes() -> None:
    x = planted(1)
    found = offline_change_points(x, penalty=3 * math.log(x.size))
    assert len(found) == 2
    np.testing.assert_allclose(found, [UP, DOWN], atol=3)
    pelt = offline_change_points(x[:700], penalty=3 * math.log(700), method="pelt", jump=5)
    assert pelt == pytest.approx([UP], abs=5)
    stats = segment_statistics(x, found)
    assert stats["n_bars"].to_list() == [found[0], found[1] - found[0], x.size - found[1]]
    middle = x[found[0] : found[1]]
    assert stats["volatility"][1] == pytest.approx(middle.std())
    assert stats["mean"][1] == pytest.approx(middle.mean())


@pytest.fixture(scope="module")
def fitted_2() -> tuple[FloatArray, np.ndarray, RegimeParams]:
    x, regimes = synthetic_returns(2)
    return x, regimes, ChangePointModel(n_states=2).fit(x, RET)


def test_is_a_regime_model() -> None:
    model: RegimeModel = ChangePointModel(n_states=3)
    assert (model.name, model.causal_filter, model.n_states) == ("changepoint", True, 3)
    assert isinstance(make_model("changepoint", 2, hazard=0.01), ChangePointModel)


def test_model_recovers_the_true_regimes(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, regimes, params = fitted_2
    model = ChangePointModel()
    filtered = model.filter(params, x)
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0)
    assert balanced_accuracy_score(regimes, filtered.argmax(axis=1)) >= 0.85
    smoothed = model.smooth(params, x)
    assert set(np.unique(smoothed)) == {0.0, 1.0}
    assert balanced_accuracy_score(regimes, smoothed.argmax(axis=1)) >= 0.85
    assert params.variances[0, 0] < params.variances[1, 0]
    np.testing.assert_allclose(np.sqrt(params.variances[:, 0]), [0.007, 0.022], rtol=0.1)
    np.testing.assert_allclose(params.transmat.sum(axis=1), 1.0)
    assert params.loglik is None and params.extra["n_segments"] > 10


def test_model_filter_is_causal(fitted_2: tuple[FloatArray, np.ndarray, RegimeParams]) -> None:
    x, _, params = fitted_2
    model = ChangePointModel()
    np.testing.assert_array_equal(model.filter(params, x)[:1000], model.filter(params, x[:1000]))


def test_sp500_crises_are_high_volatility() -> None:
    bars = fetch_bars(["SPX"]).sort("ts")
    x = np.diff(np.log(bars["close"].to_numpy()))[:, None]
    ts = bars["ts"][1:]
    model = ChangePointModel(n_states=2)
    labels = model.filter(model.fit(x, RET), x).argmax(axis=1)
    for year, month in ((2008, 10), (2011, 8)):
        in_month = ((ts.dt.year() == year) & (ts.dt.month() == month)).to_numpy()
        assert (labels[in_month] == 1).mean() > 0.5


def test_homogeneous_series_has_no_second_regime() -> None:
    x = np.random.default_rng(0).normal(0, 0.01, (1000, 1))
    with pytest.raises(ValueError, match="only 1 of 2 volatility levels"):
        ChangePointModel().fit(x, RET)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.full((50, 1), 0.01), "at least 100"),
        (np.vstack([np.full((1, 1), np.nan), np.ones((300, 1))]), "NaN"),
        (np.zeros((300, 1)), "constant"),
    ],
)
def test_bad_input_is_a_clear_error(x: FloatArray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChangePointModel().fit(x, RET)


def test_bad_series_and_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        bocpd(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        bocpd(np.array([]))
    with pytest.raises(ValueError, match="hazard"):
        bocpd(np.ones(5), hazard=1.5)
    with pytest.raises(ValueError, match="constant"):
        offline_change_points(np.zeros(100), penalty=10.0)
    with pytest.raises(ValueError, match="at least 10 bars"):
        offline_change_points(np.ones(5), penalty=10.0)
    with pytest.raises(ValueError, match="distinct bars"):
        segment_statistics(np.ones(10), [5, 5])
    with pytest.raises(ValueError, match="at least 2"):
        ChangePointModel(n_states=1)
    with pytest.raises(ValueError, match="hazard"):
        ChangePointModel(hazard=0.0)
    with pytest.raises(ValueError, match="positive"):
        NormalGammaPrior(0.0, 1.0, 1.0, -1.0)
