"""Markov switching against statsmodels, the synthetic market's true regimes, the S&P 500
crises of 2008 and 2011, and bad input.

statsmodels is evaluated at our fitted parameters on the unscaled returns, so filtered and
smoothed probabilities, log-likelihood, AIC/BIC and durations are compared like for like.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import balanced_accuracy_score
from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, simulate_returns
from engine.regimes.base import FloatArray, RegimeModel, RegimeParams
from engine.regimes.markov_switching import MarkovSwitching
from engine.regimes.registry import make_model

RET = ("log_return",)
N_DAYS = 3000
SEED = 3


def synthetic_returns(
    n_states: int, n_days: int = N_DAYS, seed: int = SEED
) -> tuple[FloatArray, np.ndarray]:
    """Daily log returns (T, 1) of one synthetic symbol and its true regimes (T,)."""
    x, regimes = simulate_returns(n_states, n_days, seed=seed)
    return x[0], regimes


def sp500_returns() -> tuple[FloatArray, pl.Series]:
    """S&P 500 daily log returns (T, 1), 1999-2018, and their dates."""
    bars = fetch_bars(["SPX"]).sort("ts")
    return np.diff(np.log(bars["close"].to_numpy()))[:, None], bars["ts"][1:]


def share_of_month(labels: np.ndarray, ts: pl.Series, year: int, month: int) -> float:
    """Fraction of the month's trading days labelled regime 1 (high volatility)."""
    in_month = ((ts.dt.year() == year) & (ts.dt.month() == month)).to_numpy()
    return float((labels[in_month] == 1).mean())


def statsmodels_at(
    params: RegimeParams, returns: FloatArray
) -> tuple[MarkovRegression, FloatArray]:
    """statsmodels' model of the unscaled returns and its parameter vector for `params`."""
    model = MarkovRegression(returns, k_regimes=params.n_states, trend="c", switching_variance=True)
    values = []
    for name in model.param_names:
        index = [int(i) for i in re.findall(r"(?<=[\[>])\d+", name)]  # p[i->j], const[k]
        if name.startswith("p["):  # p[i->j] = P(s_t = j | s_t-1 = i): our row i, column j
            values.append(params.transmat[index[0], index[1]])
        elif name.startswith("const"):
            values.append(params.means[index[0], 0])
        else:
            values.append(params.variances[index[0], 0])
    return model, np.asarray(values)


@pytest.fixture(scope="module")
def fitted_2() -> tuple[FloatArray, np.ndarray, RegimeParams]:
    x, regimes = synthetic_returns(2)
    return x, regimes, MarkovSwitching(n_states=2).fit(x, RET)


def test_is_a_regime_model() -> None:
    model: RegimeModel = MarkovSwitching(n_states=3)
    assert (model.name, model.causal_filter, model.n_states) == ("markov_switching", True, 3)
    assert isinstance(make_model("markov_switching", 3, trend="n"), MarkovSwitching)


@pytest.mark.parametrize("n_states", [2, 3])
def test_filter_recovers_the_true_regimes(n_states: int) -> None:
    x, regimes = synthetic_returns(n_states)
    model = MarkovSwitching(n_states=n_states)
    params = model.fit(x, RET)
    filtered = model.filter(params, x)
    assert balanced_accuracy_score(regimes, filtered.argmax(axis=1)) >= 0.85
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0)
    # calm first, and each regime's volatility close to the simulator's
    _, true_vols, _ = SyntheticBarsQuery(symbols=("S",), n_states=n_states).parameters()
    assert (np.diff(params.variances[:, 0]) > 0).all()
    np.testing.assert_allclose(np.sqrt(params.variances[:, 0]), true_vols, rtol=0.1)
    smoothed = model.smooth(params, x)
    assert balanced_accuracy_score(regimes, smoothed.argmax(axis=1)) >= 0.85


def test_filter_and_smoother_equal_statsmodels(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, _, params = fitted_2
    model, values = statsmodels_at(params, x[:, 0])
    result = model.smooth(values)
    ours = MarkovSwitching()
    np.testing.assert_allclose(
        ours.filter(params, x), result.filtered_marginal_probabilities, atol=1e-8
    )
    np.testing.assert_allclose(
        ours.smooth(params, x), result.smoothed_marginal_probabilities, atol=1e-8
    )
    assert params.loglik == pytest.approx(result.llf, rel=1e-10)
    assert params.n_params == len(values) == 6
    assert params.aic == pytest.approx(result.aic, rel=1e-10)
    assert params.bic == pytest.approx(result.bic, rel=1e-10)
    np.testing.assert_allclose(params.expected_durations, result.expected_durations, rtol=1e-10)
    # the start distribution is statsmodels' steady state, the chain's stationary law
    np.testing.assert_allclose(params.startprob, model.initial_probabilities(values), atol=1e-12)
    np.testing.assert_allclose(params.startprob @ params.transmat, params.startprob, atol=1e-12)
    np.testing.assert_allclose(params.transmat.sum(axis=1), 1.0)


def test_fit_is_statsmodels_maximum(fitted_2: tuple[FloatArray, np.ndarray, RegimeParams]) -> None:
    """statsmodels' own fit (returns x100, its advice) reaches the same log-likelihood once
    its change of units is undone: log L(r) = log L(100 r) + T log 100."""
    x, _, params = fitted_2
    scaled = MarkovRegression(100 * x[:, 0], k_regimes=2, trend="c", switching_variance=True)
    result = scaled.fit(disp=False)
    own_units = result.llf + x.shape[0] * np.log(100)
    assert params.loglik == pytest.approx(own_units, abs=1e-3)
    assert params.aic == pytest.approx(result.aic - 2 * x.shape[0] * np.log(100), abs=2e-3)
    assert params.extra["converged"]


def test_filter_is_causal(fitted_2: tuple[FloatArray, np.ndarray, RegimeParams]) -> None:
    x, _, params = fitted_2
    model = MarkovSwitching()
    past = model.filter(params, x[:2000])
    np.testing.assert_array_equal(model.filter(params, x)[:2000], past)
    # the smoother is two-sided: future bars move past probabilities
    assert not np.allclose(model.smooth(params, x)[:2000], model.smooth(params, x[:2000]))


def test_labels_stable_when_the_window_grows(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, _, params = fitted_2
    model = MarkovSwitching()
    shorter = model.fit(x[:-21], RET)
    same = model.filter(shorter, x).argmax(axis=1) == model.filter(params, x).argmax(axis=1)
    assert same.mean() >= 0.95


def test_sp500_crises_are_high_volatility() -> None:
    x, ts = sp500_returns()
    model = MarkovSwitching(n_states=2)
    params = model.fit(x, RET)
    labels = model.filter(params, x).argmax(axis=1)
    assert share_of_month(labels, ts, 2008, 10) > 0.9
    assert share_of_month(labels, ts, 2011, 8) > 0.5
    assert params.variances[1, 0] > 4 * params.variances[0, 0]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.full((50, 1), 0.01), "at least 100"),
        (np.vstack([np.full((1, 1), np.nan), np.ones((300, 1))]), "NaN"),
        (np.zeros((300, 1)), "constant"),
        (np.ones(300), r"shape \(T, F\)"),
    ],
)
def test_bad_input_is_a_clear_error(x: FloatArray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MarkovSwitching().fit(x, RET)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_states": 1}, "at least 2"), ({"trend": "ct"}, "trend"), ({"em_iter": 0}, "em_iter")],
)
def test_bad_settings_are_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MarkovSwitching(**kwargs)  # type: ignore[arg-type]


def test_features_must_match_columns(fitted_2: tuple[FloatArray, np.ndarray, RegimeParams]) -> None:
    x, _, params = fitted_2
    with pytest.raises(ValueError, match="2 feature columns; expected 1"):
        MarkovSwitching().fit(np.hstack([x, x]), RET)
    with pytest.raises(ValueError, match="NaN"):
        MarkovSwitching().filter(params, np.full((5, 1), np.nan))
