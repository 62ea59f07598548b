"""Chart- and table-ready shapes of a regime fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.providers.synthetic import SyntheticBarsQuery, simulate
from engine.regimes.base import RegimeParams
from engine.regimes.service import RegimeSpec, fit_regimes
from engine.regimes.summary import (
    forecast_frame,
    model_defaults,
    probability_frame,
    regime_spans,
    regime_table,
    transition_frame,
)


def _day(i: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)


def _params(transmat: list[list[float]]) -> RegimeParams:
    k = len(transmat)
    return RegimeParams(
        model="hmm",
        features=("log_return",),
        means=np.zeros((k, 1)),
        variances=np.arange(1, k + 1, dtype=np.float64).reshape(k, 1),
        transmat=np.asarray(transmat),
        startprob=np.full(k, 1 / k),
    )


def test_regime_spans_tile_each_symbols_history() -> None:
    labels = pl.DataFrame(
        {
            "symbol": ["A"] * 6 + ["B"] * 2,
            "ts": [_day(i) for i in range(6)] + [_day(0), _day(1)],
            "regime": [0, 0, 1, 1, 1, 0, 1, 1],
        }
    )
    spans = regime_spans(labels)
    assert spans.to_dicts() == [
        {"symbol": "A", "regime": 0, "start": _day(0), "end": _day(2), "bars": 2},
        {"symbol": "A", "regime": 1, "start": _day(2), "end": _day(5), "bars": 3},
        {"symbol": "A", "regime": 0, "start": _day(5), "end": _day(5), "bars": 1},
        {"symbol": "B", "regime": 1, "start": _day(0), "end": _day(1), "bars": 2},
    ]


def test_regime_spans_of_no_labels_is_an_empty_frame() -> None:
    empty = pl.DataFrame(
        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "regime": pl.Int32}
    )
    spans = regime_spans(empty)
    assert spans.is_empty()
    assert spans.columns == ["symbol", "regime", "start", "end", "bars"]


def test_probability_frame_is_long_with_one_row_per_regime() -> None:
    labels = pl.DataFrame(
        {
            "symbol": ["A", "A"],
            "ts": [_day(0), _day(1)],
            "kind": ["filtered", "filtered"],
            "regime": [0, 1],
            "probs": [[0.9, 0.1], [0.3, 0.7]],
        }
    )
    long = probability_frame(labels)
    assert long.columns == ["symbol", "ts", "kind", "regime", "probability"]
    assert long["regime"].to_list() == [0, 1, 0, 1]
    assert long["probability"].to_list() == [0.9, 0.1, 0.3, 0.7]


def test_transition_frame_lists_every_cell() -> None:
    cells = transition_frame(_params([[0.9, 0.1], [0.2, 0.8]]))
    assert cells.rows() == [(0, 0, 0.9), (0, 1, 0.1), (1, 0, 0.2), (1, 1, 0.8)]


def test_forecast_frame_steps_sum_to_one_and_converge() -> None:
    params = _params([[0.9, 0.1], [0.2, 0.8]])
    ahead = forecast_frame(params, [1.0, 0.0], 50)
    assert ahead.columns == ["step", "regime", "name", "probability"]
    sums = ahead.group_by("step").agg(pl.col("probability").sum())["probability"]
    assert np.allclose(sums.to_numpy(), 1.0)
    first = ahead.filter(pl.col("step") == 1)["probability"].to_list()
    assert first == pytest.approx([0.9, 0.1])
    last = ahead.filter(pl.col("step") == 50)["probability"].to_list()
    assert last == pytest.approx([2 / 3, 1 / 3], abs=1e-6)  # the stationary distribution
    assert ahead["name"].unique().sort().to_list() == ["calm", "turbulent"]


def test_model_defaults_are_the_constructor_parameters() -> None:
    defaults = model_defaults("hmm")
    assert "n_states" not in defaults
    assert defaults["n_iter"] == 100
    with pytest.raises(ValueError, match="unknown regime model"):
        model_defaults("nope")


def test_regime_table_joins_statistics_and_durations() -> None:
    bars = simulate(SyntheticBarsQuery(symbols=("SYN0000",), n_days=600)).drop("regime")
    result = fit_regimes(bars, RegimeSpec(model="hmm", n_states=2), workers=1)
    table = regime_table(result, "SYN0000")
    assert table["regime"].to_list() == [0, 1]
    assert table["name"].to_list() == ["calm", "turbulent"]
    assert table["share_of_time"].sum() == pytest.approx(1.0)
    volatility = table["volatility"].to_list()
    assert volatility[0] < volatility[1]  # regimes ascend by volatility
    assert (table["expected_duration"] >= 1).all()
    assert table["bars"].sum() == result.labels.filter(pl.col("kind") == "filtered").height
