"""The statistical jump model: its dynamic programme against brute force, the synthetic
market's true regimes, causality of the online filter, the S&P 500 crises and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, simulate_returns
from engine.regimes.base import FloatArray, RegimeModel, RegimeParams
from engine.regimes.jump import JumpModel, _forward_costs, _optimal_sequence, volatility_features
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


@pytest.fixture(scope="module")
def fitted_2() -> tuple[FloatArray, np.ndarray, RegimeParams]:
    x, regimes = synthetic_returns(2)
    return x, regimes, JumpModel(n_states=2).fit(x, RET)


def brute_force(loss: FloatArray, penalty: float) -> tuple[tuple[int, ...], float]:
    """The cheapest state sequence by enumeration, and its cost."""
    n_steps, n_states = loss.shape
    best: tuple[tuple[int, ...], float] = ((), np.inf)
    for sequence in itertools.product(range(n_states), repeat=n_steps):
        jumps = sum(a != b for a, b in itertools.pairwise(sequence))
        cost = loss[np.arange(n_steps), sequence].sum() + penalty * jumps
        if cost < best[1]:
            best = (sequence, cost)
    return best


def test_is_a_regime_model() -> None:
    model: RegimeModel = JumpModel(n_states=3)
    assert (model.name, model.causal_filter, model.n_states) == ("jump", True, 3)
    assert isinstance(make_model("jump", 2, jump_penalty=10.0), JumpModel)


@pytest.mark.parametrize("n_states", [2, 3])
def test_dynamic_programme_is_optimal(n_states: int) -> None:
    rng = np.random.default_rng(n_states)
    for penalty in (0.0, 0.5, 2.0):
        loss = rng.exponential(size=(7, n_states))
        states, cost = _optimal_sequence(loss, penalty)
        sequence, best = brute_force(loss, penalty)
        assert cost == pytest.approx(best)
        assert tuple(states) == sequence  # continuous losses: the optimum is unique
        chosen = loss[np.arange(7), states].sum() + penalty * (np.diff(states) != 0).sum()
        assert chosen == pytest.approx(best)
        # online: the forward cost at t is the cheapest sequence over bars ..t
        forward, _ = _forward_costs(loss, penalty)
        for t in range(1, 7):
            assert forward[t].min() == pytest.approx(brute_force(loss[: t + 1], penalty)[1])


@pytest.mark.parametrize("n_states", [2, 3])
def test_filter_recovers_the_true_regimes(n_states: int) -> None:
    x, regimes = synthetic_returns(n_states)
    model = JumpModel(n_states=n_states)
    params = model.fit(x, RET)
    filtered = model.filter(params, x)
    assert balanced_accuracy_score(regimes, filtered.argmax(axis=1)) >= 0.85
    smoothed = model.smooth(params, x)
    assert balanced_accuracy_score(regimes, smoothed.argmax(axis=1)) >= 0.85
    # one-hot rows; calm first; each state's return volatility close to the simulator's
    assert set(np.unique(filtered)) == {0.0, 1.0}
    np.testing.assert_array_equal(filtered.sum(axis=1), 1.0)
    _, true_vols, _ = SyntheticBarsQuery(symbols=("S",), n_states=n_states).parameters()
    assert (np.diff(params.variances[:, 0]) > 0).all()
    np.testing.assert_allclose(np.sqrt(params.variances[:, 0]), true_vols, rtol=0.15)


def test_parameters_describe_the_fitted_sequence(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, _, params = fitted_2
    assert params.features == ("log_return", "log_return_log_vol_hl2")
    assert params.means.shape == params.variances.shape == (2, 2)
    assert params.loglik is None and params.aic is None and params.bic is None
    # the smoother on the fit sample is the fitted sequence: means, transitions agree
    states = JumpModel().smooth(params, x).argmax(axis=1)
    for k in range(2):
        assert params.means[k, 0] == pytest.approx(x[states == k, 0].mean())
        assert params.variances[k, 0] == pytest.approx(x[states == k, 0].var())
    counts = np.ones((2, 2))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    np.testing.assert_allclose(params.transmat, counts / counts.sum(axis=1, keepdims=True))
    assert params.extra["n_jumps"] == (np.diff(states) != 0).sum()
    np.testing.assert_allclose(params.expected_durations, 1 / (1 - np.diag(params.transmat)))
    assert params.startprob.sum() == pytest.approx(1.0)


def test_filter_is_causal(fitted_2: tuple[FloatArray, np.ndarray, RegimeParams]) -> None:
    x, _, params = fitted_2
    for model in (JumpModel(), JumpModel(temperature=2.0)):
        past = model.filter(params, x[:2000])
        np.testing.assert_array_equal(model.filter(params, x)[:2000], past)
    # the smoother backtracks from the last bar: it relabels bars the filter got wrong
    assert not np.array_equal(JumpModel().smooth(params, x), JumpModel().filter(params, x))


def test_temperature_gives_probabilities_with_the_same_argmax(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, _, params = fitted_2
    soft = JumpModel(temperature=2.0).filter(params, x)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert soft.min() > 0.0 and soft.max() <= 1.0
    np.testing.assert_array_equal(soft.argmax(axis=1), JumpModel().filter(params, x).argmax(axis=1))


def test_penalty_buys_persistence_and_seed_reproduces() -> None:
    x, _ = synthetic_returns(2, n_days=1000)
    jumps = [JumpModel(jump_penalty=p).fit(x, RET).extra["n_jumps"] for p in (0.0, 2.0, 20.0)]
    assert jumps[0] > jumps[1] > jumps[2]
    first, again = JumpModel(seed=7).fit(x, RET), JumpModel(seed=7).fit(x, RET)
    np.testing.assert_array_equal(first.means, again.means)


def test_labels_stable_when_the_window_grows(
    fitted_2: tuple[FloatArray, np.ndarray, RegimeParams],
) -> None:
    x, _, params = fitted_2
    model = JumpModel()
    shorter = model.fit(x[:-21], RET)
    same = model.filter(shorter, x).argmax(axis=1) == model.filter(params, x).argmax(axis=1)
    assert same.mean() >= 0.95


def test_other_features_are_clustered_as_given() -> None:
    x, regimes = synthetic_returns(2, n_days=1500)
    vol = volatility_features(x[:, 0], (5.0,))
    model = JumpModel(return_halflives=())
    params = model.fit(np.hstack([x, vol]), ("log_return", "log_vol_5"))
    assert params.features == ("log_return", "log_vol_5")
    labels = model.filter(params, np.hstack([x, vol])).argmax(axis=1)
    assert balanced_accuracy_score(regimes, labels) >= 0.8


def test_sp500_crises_are_high_volatility() -> None:
    bars = fetch_bars(["SPX"]).sort("ts")
    x = np.diff(np.log(bars["close"].to_numpy()))[:, None]
    ts = bars["ts"][1:]
    model = JumpModel(n_states=2)
    labels = model.filter(model.fit(x, RET), x).argmax(axis=1)
    for year, month, share in ((2008, 10, 0.9), (2011, 8, 0.5)):
        in_month = ((ts.dt.year() == year) & (ts.dt.month() == month)).to_numpy()
        assert (labels[in_month] == 1).mean() > share


def test_volatility_features_are_causal_and_floored() -> None:
    returns = np.r_[np.zeros(3), np.random.default_rng(0).normal(0, 0.01, 100)]
    full = volatility_features(returns, (2.0, 10.0))
    np.testing.assert_array_equal(volatility_features(returns[:50], (2.0, 10.0)), full[:50])
    assert np.isfinite(full).all() and full[0, 0] == pytest.approx(np.log(1e-5))


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
        JumpModel().fit(x, RET)


def test_a_penalty_too_high_for_k_states_is_an_error() -> None:
    x, _ = synthetic_returns(2, n_days=500)
    with pytest.raises(ValueError, match="used only 1 of 2 states"):
        JumpModel(jump_penalty=1e9).fit(x, RET)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_states": 1}, "at least 2"),
        ({"jump_penalty": -1.0}, "jump_penalty"),
        ({"n_init": 0}, "n_init"),
        ({"return_halflives": (0.0,)}, "return_halflives"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_settings_are_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JumpModel(**kwargs)  # type: ignore[arg-type]
