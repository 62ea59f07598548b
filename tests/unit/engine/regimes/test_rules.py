"""The `rules` regime: Polars == DuckDB, causal, documented state order, bad input, and the
RegimeModel interface (fit / filter / smooth) used by walk-forward fitting."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.features.names import FEATURE_NAMES
from engine.providers.sample import fetch_bars
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.regimes.base import permute
from engine.regimes.fitting import WalkForward, fit_symbol
from engine.regimes.registry import make_model
from engine.regimes.rules import (
    RULES_STATE_NAMES,
    RulesConfig,
    RulesModel,
    rules_labels,
    rules_labels_sql,
)
from engine.schema import CLOSE, HIGH, LOW, OPEN, REGIME, SYMBOL, TS

CONFIGS = {
    "trailing quantile": RulesConfig(),
    "vol only": RulesConfig(n_states=2),
    "expanding quantile": RulesConfig(expanding=True, window=60, quantile=0.5),
    "fixed threshold": RulesConfig(vol_threshold=0.2, trend_feature="trend_slope_20d"),
}


@pytest.fixture(scope="module")
def synthetic() -> pl.DataFrame:
    """Three symbols of the 2-regime simulator, true regime kept as `true_regime`."""
    query = SyntheticBarsQuery(symbols=resolve_symbols("3"), n_days=700)
    return simulate(query).rename({REGIME: "true_regime"})


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return fetch_bars(["SPX", "IXIC", "VIX"]).sort(SYMBOL, TS)


# --- the same rule three ways ----------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("source", ["synthetic", "sample"])
def test_polars_equals_duckdb_sql(source, config, request) -> None:
    frame = request.getfixturevalue(source)
    polars = rules_labels(frame.lazy(), config, features=FEATURE_NAMES).collect()
    duckdb = rules_labels_sql(frame, config, features=FEATURE_NAMES)
    assert polars.columns == duckdb.columns
    assert_frame_equal(polars, duckdb, rel_tol=1e-9, abs_tol=1e-12)
    assert polars[REGIME].drop_nulls().n_unique() == config.n_states


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_fast_form_equals_the_over_form(synthetic, config) -> None:
    fast = rules_labels(synthetic.lazy(), config).collect()
    simple = rules_labels(synthetic.lazy(), config, presorted=False).collect()
    assert_frame_equal(fast, simple, rel_tol=1e-9, abs_tol=1e-12)


def test_rule_inputs_may_be_existing_columns(synthetic) -> None:
    frame = synthetic.with_columns(
        (pl.col(HIGH) / pl.col(LOW)).log().rolling_mean(10).over(SYMBOL).alias("my_vol"),
        (pl.col(CLOSE) / pl.col(OPEN)).log().alias("my_trend"),
    )
    config = RulesConfig(vol_feature="my_vol", trend_feature="my_trend", window=50)
    polars = rules_labels(frame.lazy(), config).collect()
    assert polars.columns == [*frame.columns, REGIME]
    assert_frame_equal(polars, rules_labels_sql(frame, config), rel_tol=1e-9, abs_tol=1e-12)
    assert_frame_equal(polars, rules_labels(frame.lazy(), config, presorted=False).collect())


# --- causality ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_future_bars_never_change_past_labels(synthetic, config) -> None:
    cutoff = synthetic[TS].unique().sort()[400]
    past = synthetic.filter(pl.col(TS) <= cutoff)
    # wild future bars: 10x prices, 5x ranges; they must not move a single past label
    future = synthetic.filter(pl.col(TS) > cutoff).with_columns(
        pl.col(CLOSE) * 10, pl.col(OPEN) * 10, pl.col(HIGH) * 50, pl.col(LOW) * 2
    )
    alone = rules_labels(past.lazy(), config).collect()
    extended = rules_labels(pl.concat([past, future]).sort(SYMBOL, TS).lazy(), config).collect()
    assert_frame_equal(alone, extended.filter(pl.col(TS) <= cutoff))


# --- state order and meaning -------------------------------------------------------------


def test_states_follow_the_documented_order(synthetic) -> None:
    """0 low-vol up, 1 low-vol down, 2 high-vol up, 3 high-vol down, checked against a
    NumPy re-derivation of the rule for one symbol."""
    config = RulesConfig(window=100)
    labels = rules_labels(synthetic.lazy(), config).collect().filter(pl.col(SYMBOL) == "SYN0001")
    vol, trend = labels["realized_vol_20d"].to_numpy(), labels["momentum_63d"].to_numpy()
    regime = labels[REGIME].to_numpy().astype(float)
    for t in range(labels.height):
        window = vol[max(0, t - 99) : t + 1]
        if t < 99 or np.isnan(window).any() or np.isnan(trend[t]):
            assert np.isnan(regime[t])
            continue
        high_vol = vol[t] > np.quantile(window, 0.75)
        expected = RULES_STATE_NAMES[4].index(
            f"{'high' if high_vol else 'low'}-vol {'downtrend' if trend[t] < 0 else 'uptrend'}"
        )
        assert regime[t] == expected


def test_high_vol_state_finds_the_simulated_turbulent_regime(synthetic) -> None:
    labels = rules_labels(synthetic.lazy(), RulesConfig(n_states=2)).collect().drop_nulls(REGIME)
    truth, found = labels["true_regime"].to_numpy(), labels[REGIME].to_numpy()
    recall = [float((found[truth == k] == k).mean()) for k in (0, 1)]
    assert min(recall) > 0.75, recall
    vol_by_state = labels.group_by(REGIME).agg(pl.col("realized_vol_20d").mean()).sort(REGIME)
    assert vol_by_state["realized_vol_20d"].is_sorted()


def test_sp500_crises_are_high_vol(sample) -> None:
    labels = rules_labels(sample.lazy(), RulesConfig(n_states=2)).collect()
    spx = labels.filter(pl.col(SYMBOL) == "SPX")
    for month in ("2008-10", "2011-08"):
        in_month = spx.filter(pl.col(TS).dt.strftime("%Y-%m") == month)[REGIME]
        assert in_month.mean() > 0.9, month


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RulesConfig(window=1), "window must be an integer >= 2"),
        (lambda: RulesConfig(n_states=3), "2 or 4 states"),
        (lambda: RulesConfig(quantile=1.0), r"quantile must be in \(0, 1\)"),
        (lambda: RulesConfig(vol_threshold=-0.1), "vol_threshold must be a positive number"),
        (lambda: RulesModel(n_states=3), "2 or 4 states"),
        (lambda: RulesModel(vol_window=1), "vol_window must be an integer >= 2"),
    ],
)
def test_bad_parameters(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_feature_names_the_known_ones(synthetic) -> None:
    for config, features in ((RulesConfig(vol_feature="vol_20d"), ()), (None, ["nope"])):
        with pytest.raises(ValueError, match="known features: log_return"):
            rules_labels(synthetic.lazy(), config, features=features)
        with pytest.raises(ValueError, match="known features: log_return"):
            rules_labels_sql(synthetic, config, features=features)


def test_regime_column_must_not_overwrite_one(synthetic) -> None:
    with pytest.raises(ValueError, match="already has a column 'true_regime'"):
        rules_labels(synthetic.lazy(), alias="true_regime")
    with pytest.raises(ValueError, match="already has a column 'true_regime'"):
        rules_labels_sql(synthetic, alias="true_regime")


def test_empty_frame(synthetic) -> None:
    empty = synthetic.clear()
    with pytest.raises(ValueError, match="at least one bar"):
        rules_labels(empty.lazy()).collect()
    with pytest.raises(ValueError, match="at least one bar"):
        rules_labels(empty.lazy(), presorted=False).collect()
    with pytest.raises(ValueError, match="at least one bar"):
        rules_labels_sql(empty)


def test_interleaved_symbols_need_presorted_false(synthetic) -> None:
    panel = synthetic.sort(TS, SYMBOL).lazy()
    with pytest.raises(ValueError, match="each symbol's bars together and in time order"):
        rules_labels(panel).collect()
    expected = rules_labels(synthetic.lazy()).collect()
    assert_frame_equal(rules_labels(panel, presorted=False).collect().sort(SYMBOL, TS), expected)


# --- the RegimeModel interface -----------------------------------------------------------


@pytest.fixture(scope="module")
def returns(synthetic) -> np.ndarray:
    """(T, 1) daily log returns of one symbol."""
    close = synthetic.filter(pl.col(SYMBOL) == "SYN0000")[CLOSE].to_numpy()
    return np.diff(np.log(close))[:, None]


def test_model_is_registered_and_built_from_user_parameters() -> None:
    model = make_model("rules", n_states=2, quantile=0.8)
    assert isinstance(model, RulesModel)
    assert (model.name, model.n_states, model.causal_filter) == ("rules", 2, True)


@pytest.mark.parametrize("n_states", [2, 4])
def test_fit_estimates_parameters_from_the_labels(returns, n_states) -> None:
    params = RulesModel(n_states).fit(returns, ("log_return",))
    assert params.model == "rules"
    assert params.n_states == n_states
    np.testing.assert_allclose(params.transmat.sum(axis=1), 1.0)
    np.testing.assert_allclose(params.startprob.sum(), 1.0)
    assert tuple(params.extra["state_names"]) == RULES_STATE_NAMES[n_states]
    high, low = (2, 0) if n_states == 4 else (1, 0)
    assert params.variances[high, 0] > params.variances[low, 0]  # high-vol is high vol
    assert params.expected_durations.min() > 1.0


def test_filter_is_one_hot_causal_and_smooth_equals_it(returns) -> None:
    model = RulesModel(4)
    params = model.fit(returns[:500], ("log_return",))
    probs = model.filter(params, returns)
    warm = np.isnan(probs).any(axis=1)
    assert warm.sum() == 62  # momentum over 63 returns
    np.testing.assert_array_equal(probs[~warm].sum(axis=1), 1.0)
    assert set(np.unique(probs[~warm])) == {0.0, 1.0}
    np.testing.assert_array_equal(model.filter(params, returns[:300]), probs[:300])
    np.testing.assert_array_equal(model.smooth(params, returns), probs)


def test_model_labels_equal_rules_labels_under_the_same_threshold(synthetic, returns) -> None:
    config = RulesConfig(vol_threshold=0.25)
    frame = rules_labels(synthetic.lazy(), config).collect().filter(pl.col(SYMBOL) == "SYN0000")
    model = RulesModel(4, vol_threshold=0.25)
    probs = model.filter(model.fit(returns, ("log_return",)), returns)
    from_model = np.where(np.isnan(probs).any(axis=1), np.nan, probs.argmax(axis=1))
    from_frame = frame[REGIME].cast(pl.Float64).fill_null(np.nan).to_numpy()[1:]
    np.testing.assert_array_equal(from_model, from_frame)


def test_filter_follows_a_relabelling_of_the_parameters(returns) -> None:
    model = RulesModel(4)
    params = model.fit(returns, ("log_return",))
    order = np.array([2, 0, 3, 1])
    relabelled = model.filter(permute(params, order), returns)
    np.testing.assert_array_equal(relabelled, model.filter(params, returns)[:, order])


def test_walk_forward_fitting_runs_the_model(returns) -> None:
    result = fit_symbol(RulesModel(2), returns, ("log_return",), WalkForward(min_train=300))
    labelled = result.filtered[300:]
    np.testing.assert_array_equal(labelled.sum(axis=1), 1.0)
    assert np.isnan(result.filtered[:300]).all()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.full((10, 1), 0.01), "at least 65 bars"),
        (np.vstack([np.full((99, 1), 0.01), [[np.nan]]]), "NaN or infinite"),
        (np.zeros((200, 1)), "constant"),
        (np.zeros((200,)), r"must be \(T, F\)"),
    ],
)
def test_model_refuses_bad_input(x, message) -> None:
    with pytest.raises(ValueError, match=message):
        RulesModel(4).fit(x, ("log_return",))
