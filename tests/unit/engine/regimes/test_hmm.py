"""The Gaussian HMM against hmmlearn, the synthetic market's true regimes and bad input.

hmmlearn is configured as the same model: diagonal covariances, no covariance prior
(`covars_prior=0`), `init_params=""` with our starting parameters, same `n_iter` and `tol`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM as HmmlearnHMM
from sklearn.metrics import balanced_accuracy_score

from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, simulate_returns
from engine.regimes.base import FloatArray, RegimeModel, RegimeParams
from engine.regimes.hmm import GaussianHMM, n_free_parameters
from engine.regimes.identity import state_order

# hmmlearn 0.3.3 sets array shapes in place, deprecated in NumPy 2.5 (its problem, not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Setting the shape on a NumPy array:DeprecationWarning"
)

RET = ("log_return",)


def synthetic_returns(
    n_states: int, n_days: int, n_symbols: int = 1, seed: int = 42
) -> tuple[FloatArray, np.ndarray]:
    """Daily log returns (N, T, 1) of the synthetic market and its true regimes (T,)."""
    return simulate_returns(n_states, n_days, n_symbols, seed)


def two_features(returns: FloatArray) -> FloatArray:
    """Returns and their 5-bar mean absolute value: a second, differently scaled feature."""
    absolute = np.abs(returns[:, 0])
    smoothed = np.convolve(absolute, np.ones(5) / 5, mode="full")[: len(absolute)]
    return np.column_stack([returns[:, 0], smoothed])


def hmmlearn_model(params: RegimeParams, n_iter: int, tol: float) -> HmmlearnHMM:
    """hmmlearn's diagonal Gaussian HMM set to start from `params`."""
    model = HmmlearnHMM(
        n_components=params.n_states,
        covariance_type="diag",
        n_iter=n_iter,
        tol=tol,
        init_params="",
        covars_prior=0.0,
    )
    model.startprob_ = params.startprob.copy()
    model.transmat_ = params.transmat.copy()
    model.means_ = params.means.copy()
    model.covars_ = params.variances.copy()
    return model


@pytest.fixture(scope="module")
def returns_3() -> tuple[FloatArray, np.ndarray]:
    x, regimes = synthetic_returns(3, 800)
    return x[0], regimes


def test_is_a_regime_model() -> None:
    model: RegimeModel = GaussianHMM(n_states=3)
    assert model.name == "hmm"
    assert model.causal_filter
    assert model.n_states == 3


@pytest.mark.parametrize(("n_states", "n_features"), [(2, 1), (3, 1), (2, 2)])
def test_em_matches_hmmlearn_from_the_same_start(n_states: int, n_features: int) -> None:
    x, _ = synthetic_returns(n_states, 600, seed=7)
    data = x[0] if n_features == 1 else two_features(x[0])
    features = RET if n_features == 1 else (*RET, "abs_return_5d")
    model = GaussianHMM(n_states=n_states, n_iter=40, tol=1e-6)
    start = model.initial_params(data, features)

    ours = model.fit(data, features, init=start)
    reference = hmmlearn_model(start, n_iter=40, tol=1e-6).fit(data)

    assert ours.extra["n_iter"] == reference.monitor_.iter
    reference_loglik = reference.score(data)
    assert ours.loglik == pytest.approx(reference_loglik, rel=1e-3)
    assert ours.loglik == pytest.approx(reference_loglik, rel=1e-9)  # same algorithm
    reference_variances = np.diagonal(reference.covars_, axis1=1, axis2=2)  # (K, F, F) -> diag
    order = state_order(reference.means_, reference_variances)
    np.testing.assert_allclose(ours.means, reference.means_[order], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.variances, reference_variances[order], rtol=1e-6)
    np.testing.assert_allclose(
        ours.transmat, reference.transmat_[np.ix_(order, order)], rtol=1e-6, atol=1e-10
    )


def test_score_and_smoothed_probabilities_equal_hmmlearn(
    returns_3: tuple[FloatArray, np.ndarray],
) -> None:
    x, _ = returns_3
    model = GaussianHMM(n_states=3)
    params = model.fit(x, RET)
    reference = hmmlearn_model(params, n_iter=1, tol=0.0)

    assert model.score(params, x) == pytest.approx(reference.score(x), rel=1e-10)
    assert model.score(params, x) == params.loglik
    np.testing.assert_allclose(model.smooth(params, x), reference.predict_proba(x), atol=1e-8)


def test_fit_returns_ordered_states_and_statistics(
    returns_3: tuple[FloatArray, np.ndarray],
) -> None:
    x, _ = returns_3
    params = GaussianHMM(n_states=3).fit(x, RET)

    assert params.model == "hmm"
    assert params.features == RET
    assert np.all(np.diff(params.variances[:, 0]) > 0)  # calm state first
    assert params.n_obs == 800
    assert params.n_params == n_free_parameters(3, 1) == 2 + 6 + 6
    np.testing.assert_allclose(params.transmat.sum(axis=1), 1.0)
    assert params.startprob.sum() == pytest.approx(1.0)
    assert params.extra["converged"]
    assert 1 <= params.extra["n_iter"] <= 100
    assert params.bic is not None and params.aic is not None


def test_filter_is_causal_and_ends_where_the_smoother_ends(
    returns_3: tuple[FloatArray, np.ndarray],
) -> None:
    x, _ = returns_3
    model = GaussianHMM(n_states=3)
    params = model.fit(x, RET)

    full = model.filter(params, x)
    for cut in (30, 400, 799):
        np.testing.assert_array_equal(model.filter(params, x[:cut]), full[:cut])
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    # with no future bars to use, the last filtered row is the last smoothed row
    np.testing.assert_allclose(full[-1], model.smooth(params, x)[-1], atol=1e-12)


def test_fit_panel_equals_per_symbol_fits_with_left_padding() -> None:
    x, _ = synthetic_returns(2, 400, n_symbols=3)
    lengths = (400, 250, 120)
    panel = np.full_like(x, np.nan)
    valid = np.zeros(x.shape[:2], dtype=bool)
    for n, length in enumerate(lengths):
        panel[n, -length:] = x[n, -length:]
        valid[n, -length:] = True
    model = GaussianHMM(n_states=2)

    fitted = model.fit_panel(panel, RET, valid)
    filtered = model.filter_panel(fitted, panel, valid)
    smoothed = model.smooth_panel(fitted, panel, valid)

    for n, length in enumerate(lengths):
        alone = model.fit(x[n, -length:], RET)
        assert fitted[n].loglik == pytest.approx(alone.loglik, rel=1e-12)
        assert fitted[n].n_obs == length
        assert fitted[n].extra == alone.extra
        np.testing.assert_allclose(fitted[n].means, alone.means, rtol=1e-10)
        np.testing.assert_allclose(fitted[n].variances, alone.variances, rtol=1e-10)
        np.testing.assert_allclose(fitted[n].transmat, alone.transmat, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(filtered[n, -length:], model.filter(alone, x[n, -length:]))
        np.testing.assert_allclose(smoothed[n, -length:], model.smooth(alone, x[n, -length:]))
        assert np.isnan(filtered[n, :-length]).all()


def test_masked_steps_carry_no_observation(returns_3: tuple[FloatArray, np.ndarray]) -> None:
    x, _ = returns_3
    model = GaussianHMM(n_states=3)
    params = model.fit(x, RET)
    valid = np.ones((1, len(x)), dtype=bool)
    valid[0, 300:305] = False
    gappy = x.copy()
    gappy[300:305] = np.nan  # missing bars may hold anything; they are never read

    filtered = model.filter_panel([params], gappy[None], valid)[0]

    for t in range(300, 305):  # no news: the chain just moves one step
        np.testing.assert_allclose(filtered[t], filtered[t - 1] @ params.transmat)
    np.testing.assert_array_equal(filtered[:300], model.filter(params, x)[:300])
    refit = model.fit_panel(gappy[None], RET, valid)[0]
    assert refit.n_obs == len(x) - 5


@pytest.mark.parametrize("n_states", [2, 3])
def test_causal_filter_recovers_the_true_regimes(n_states: int) -> None:
    x, regimes = synthetic_returns(n_states, 2520)
    query = SyntheticBarsQuery(symbols=("SYN0000",), n_states=n_states)
    _, true_vols, _ = query.parameters()
    model = GaussianHMM(n_states=n_states)
    params = model.fit(x[0], RET)

    labels = model.filter(params, x[0]).argmax(axis=1)

    assert balanced_accuracy_score(regimes, labels) >= 0.85
    np.testing.assert_allclose(np.sqrt(params.variances[:, 0]), true_vols, rtol=0.25)


def test_sp500_crises_are_in_the_turbulent_regime() -> None:
    bars = fetch_bars(["SPX"])
    returns = np.diff(np.log(bars["close"].to_numpy()))[:, None]
    month = bars["ts"].dt.strftime("%Y-%m").to_numpy()[1:]
    model = GaussianHMM(n_states=2)
    params = model.fit(returns, RET)

    turbulent = model.filter(params, returns)[:, 1] > 0.5

    assert turbulent[month == "2008-10"].mean() > 0.9
    assert turbulent[month == "2011-08"].mean() > 0.8
    assert turbulent.mean() < 0.5


def test_rescaled_input_keeps_calm_first() -> None:
    x, _ = synthetic_returns(2, 1000)
    params = GaussianHMM(n_states=2).fit(100 * x[0], RET)  # percent returns
    assert params.variances[0, 0] < params.variances[1, 0]


def test_bad_inputs_raise_clear_errors() -> None:
    x, _ = synthetic_returns(2, 200)
    series = x[0]
    model = GaussianHMM(n_states=2)
    params = model.fit(series, RET)

    with pytest.raises(ValueError, match="n_states must be at least 2"):
        GaussianHMM(n_states=1)
    with pytest.raises(ValueError, match="n_iter"):
        GaussianHMM(n_iter=0)
    with pytest.raises(ValueError, match="19 valid observations; fitting needs at least 20"):
        model.fit(series[:19], RET)
    with pytest.raises(ValueError, match="x has NaN or inf at row 5"):
        model.fit(np.where(np.arange(200)[:, None] == 5, np.nan, series), RET)
    with pytest.raises(ValueError, match="NaN or inf at row 7"):
        model.filter(params, np.where(np.arange(200)[:, None] == 7, np.inf, series))
    with pytest.raises(ValueError, match="feature 0 is constant"):
        model.fit(np.full((200, 1), 0.001), RET)
    with pytest.raises(ValueError, match=r"shape \(T, F\)"):
        model.fit(series[:, 0], RET)
    with pytest.raises(ValueError, match="1 feature columns; expected 2"):
        model.fit(series, (*RET, "other"))
    with pytest.raises(ValueError, match="1 feature columns; expected 2"):
        model.filter(
            RegimeParams(
                "hmm",
                ("a", "b"),
                np.zeros((2, 2)),
                np.ones((2, 2)),
                params.transmat,
                params.startprob,
            ),
            series,
        )
    with pytest.raises(ValueError, match=r"shape \(N, T, F\)"):
        model.fit_panel(series, RET)
    with pytest.raises(ValueError, match="valid must be a bool array of shape"):
        model.fit_panel(x, RET, valid=np.ones((1, 199), dtype=bool))
    with pytest.raises(ValueError, match="symbol 1 has 15 valid observations"):
        valid = np.ones((2, 200), dtype=bool)
        valid[1, :185] = False
        model.fit_panel(np.concatenate([x, x]), RET, valid)
    with pytest.raises(ValueError, match="init has 1 parameter sets for 2 symbols"):
        model.fit_panel(np.concatenate([x, x]), RET, init=[params])


@pytest.mark.slow
def test_panel_of_full_histories_matches_hmmlearn_and_the_truth() -> None:
    x, regimes = synthetic_returns(3, 2520, n_symbols=24)
    model = GaussianHMM(n_states=3)
    starts = model.initial_params_panel(x, RET)

    fitted = model.fit_panel(x, RET, init=starts)
    filtered = model.filter_panel(fitted, x)

    for n in range(0, 24, 6):
        reference = hmmlearn_model(starts[n], n_iter=model.n_iter, tol=model.tol).fit(x[n])
        assert fitted[n].loglik == pytest.approx(reference.score(x[n]), rel=1e-3)
    accuracy = [balanced_accuracy_score(regimes, f.argmax(axis=1)) for f in filtered]
    assert np.median(accuracy) >= 0.85
