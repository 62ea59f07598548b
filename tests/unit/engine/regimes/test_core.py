"""The model-independent core: parameters, forecasts, state identity, walk-forward, stats."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np
import polars as pl
import pytest

from engine.regimes.base import FloatArray, RegimeParams, forecast, permute
from engine.regimes.fitting import WalkForward, fit_symbol
from engine.regimes.identity import match_states, order_states
from engine.regimes.stats import current_regimes, model_statistics, regime_statistics


def params(
    variances: list[float], means: list[float] | None = None, stay: float = 0.9
) -> RegimeParams:
    k = len(variances)
    transmat = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(transmat, stay)
    return RegimeParams(
        model="test",
        features=("log_return",),
        means=np.array(means or [0.0] * k, dtype=float)[:, None],
        variances=np.array(variances, dtype=float)[:, None],
        transmat=transmat,
        startprob=np.full(k, 1 / k),
        loglik=-100.0,
        n_obs=500,
        n_params=5,
    )


def test_expected_durations_aic_bic() -> None:
    p = params([1.0, 4.0], stay=0.95)
    assert p.expected_durations == pytest.approx([20.0, 20.0])
    assert p.aic == pytest.approx(2 * 5 + 200)
    assert p.bic == pytest.approx(5 * np.log(500) + 200)
    assert replace(p, loglik=None).aic is None
    assert replace(p, n_obs=0).bic is None


def test_forecast_converges_to_the_stationary_distribution() -> None:
    transmat = np.array([[0.9, 0.1], [0.3, 0.7]])
    path = forecast(transmat, np.array([1.0, 0.0]), 200)
    assert path[0] == pytest.approx([0.9, 0.1])
    assert path[1] == pytest.approx(np.array([0.9, 0.1]) @ transmat)
    assert path[-1] == pytest.approx([0.75, 0.25], abs=1e-9)
    assert np.allclose(path.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        forecast(transmat, np.array([1.0, 0.0]), 0)


def test_order_states_sorts_by_variance_then_mean() -> None:
    shuffled = params([9.0, 1.0, 4.0], means=[0.3, 0.1, 0.2])
    ordered = order_states(shuffled)
    assert ordered.variances[:, 0].tolist() == [1.0, 4.0, 9.0]
    assert ordered.means[:, 0].tolist() == [0.1, 0.2, 0.3]
    ties = order_states(params([1.0, 1.0], means=[0.5, -0.5]))
    assert ties.means[:, 0].tolist() == [-0.5, 0.5]


def test_permute_moves_the_transition_matrix_with_the_states() -> None:
    p = replace(params([1.0, 4.0]), transmat=np.array([[0.9, 0.1], [0.4, 0.6]]))
    swapped = permute(p, np.array([1, 0]))
    assert swapped.transmat.tolist() == [[0.6, 0.4], [0.1, 0.9]]
    assert swapped.variances[:, 0].tolist() == [4.0, 1.0]


def test_match_states_keeps_labels_when_a_refit_swaps_close_states() -> None:
    previous = params([1.0, 1.2, 9.0], means=[0.5, -0.5, 0.0])
    # the refit estimated the first two volatilities the other way round
    refit = order_states(params([1.25, 1.15, 8.5], means=[0.48, -0.52, 0.0]))
    matched = match_states(previous, refit)
    assert matched.means[:, 0].tolist() == pytest.approx([0.48, -0.52, 0.0])
    with pytest.raises(ValueError, match="different numbers of states"):
        match_states(previous, params([1.0, 2.0]))


def test_walk_forward_slices_cover_the_span_without_overlap() -> None:
    expanding = WalkForward(min_train=100, refit_every=30)
    slices = expanding.training_slices(250)
    assert [(s, a, u) for s, a, u in slices] == [
        (0, 100, 130),
        (0, 130, 160),
        (0, 160, 190),
        (0, 190, 220),
        (0, 220, 250),
    ]
    rolling = WalkForward(mode="rolling", min_train=100, refit_every=50, window=80)
    assert rolling.training_slices(260) == [
        (20, 100, 150),
        (70, 150, 200),
        (120, 200, 250),
        (170, 250, 260),
    ]
    with pytest.raises(ValueError, match="more than min_train"):
        expanding.training_slices(100)
    with pytest.raises(ValueError, match="mode must be"):
        WalkForward(mode="sideways")  # type: ignore[arg-type]


class VolThreshold:
    """A tiny causal model: regime 1 when |x_t| exceeds the training sample's 80th percentile."""

    name: ClassVar[str] = "threshold"
    causal_filter: ClassVar[bool] = True

    def __init__(self, n_states: int = 2) -> None:
        self.n_states = n_states
        self.fits: list[int] = []

    def fit(self, x: FloatArray, features: tuple[str, ...]) -> RegimeParams:
        self.fits.append(len(x))
        cut = float(np.quantile(np.abs(x[:, 0]), 0.8))
        calm, wild = x[np.abs(x[:, 0]) <= cut, 0], x[np.abs(x[:, 0]) > cut, 0]
        return RegimeParams(
            model=self.name,
            features=features,
            means=np.array([[calm.mean()], [wild.mean()]]),
            variances=np.array([[calm.var()], [wild.var()]]),
            transmat=np.array([[0.9, 0.1], [0.5, 0.5]]),
            startprob=np.array([0.8, 0.2]),
            extra={"cut": cut},
        )

    def filter(self, p: RegimeParams, x: FloatArray) -> FloatArray:
        wild = (np.abs(x[:, 0]) > p.extra["cut"]).astype(float)
        return np.column_stack([1 - wild, wild])

    smooth = filter


def test_walk_forward_labels_are_out_of_sample_and_causal() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 1)) * np.where(np.arange(400) % 100 < 20, 3.0, 1.0)[:, None]
    model = VolThreshold()
    schedule = WalkForward(min_train=200, refit_every=50)

    result = fit_symbol(model, x, ("log_return",), schedule, smooth=False)

    assert np.isnan(result.filtered[:200]).all()  # nothing labelled before the first refit
    assert not np.isnan(result.filtered[200:]).any()
    assert model.fits == [200, 250, 300, 350]  # expanding: every refit trains on the past only
    assert result.refits == 4
    # appending future bars never changes an earlier label
    longer = fit_symbol(
        VolThreshold(),
        np.vstack([x, rng.standard_normal((60, 1))]),
        ("log_return",),
        schedule,
        smooth=False,
    )
    assert np.array_equal(longer.filtered[:400], result.filtered, equal_nan=True)


def _labels(symbol: str, regimes: list[int], start: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": symbol,
            "ts": [start + timedelta(days=i) for i in range(len(regimes))],
            "regime": regimes,
            "probs": [[0.9, 0.1] if r == 0 else [0.2, 0.8] for r in regimes],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "regime": pl.Int32},
    )


def test_current_regime_and_days_in_it() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    labels = pl.concat(
        [_labels("A", [0, 0, 1, 1, 1], start), _labels("B", [1, 0, 0, 1, 0, 0], start)]
    )

    current = current_regimes(labels)

    assert current.select("symbol", "regime", "days_in_regime").rows() == [("A", 1, 3), ("B", 0, 2)]
    assert current["probability"].to_list() == pytest.approx([0.8, 0.9])
    assert current["ts"].to_list() == [start + timedelta(days=4), start + timedelta(days=5)]


def test_regime_statistics_per_symbol_and_regime() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    labels = _labels("A", [0, 0, 1, 1], start)
    returns = labels.select("symbol", "ts").with_columns(
        pl.Series("log_return", [0.01, 0.03, -0.02, -0.06])
    )

    stats = regime_statistics(labels, returns, periods_per_year=252)

    calm, wild = stats.rows(named=True)
    assert (calm["regime"], calm["bars"], calm["share_of_time"]) == (0, 2, 0.5)
    assert calm["mean_return"] == pytest.approx(0.02 * 252)
    assert calm["volatility"] == pytest.approx(np.std([0.01, 0.03], ddof=1) * np.sqrt(252))
    assert wild["sharpe"] == pytest.approx(wild["mean_return"] / wild["volatility"])


def test_model_statistics_is_plain_json() -> None:
    import json

    summary = model_statistics(params([1.0, 4.0]))
    assert json.loads(json.dumps(summary))["expected_durations"] == [10.0, 10.0]
