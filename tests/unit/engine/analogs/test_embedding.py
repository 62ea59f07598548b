"""Market-state embeddings: causal, scale-free, versioned, and robust to row order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.analogs.embedding import DIMENSION, GROUPS, EmbeddingSpec, path_lags, state_vectors
from engine.analogs.outcomes import distinct_analogs, fan, forward_returns, price_paths
from engine.schema import CLOSE, SYMBOL, TS

SPEC = EmbeddingSpec(regime_model=None)


def _bars(symbol: str = "AAA", n: int = 400, seed: int = 1, scale: float = 100.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = scale * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
    ts = [datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(n)]
    return pl.DataFrame({SYMBOL: symbol, TS: ts, CLOSE: close})


def test_states_start_after_the_lookback_and_have_the_column_width() -> None:
    states = state_vectors(_bars(n=400), SPEC)
    assert states.height == 400 - SPEC.lookback
    assert states.schema["embedding"] == pl.Array(pl.Float32, DIMENSION)
    assert sum(GROUPS.values()) == DIMENSION


def test_a_state_never_changes_when_later_bars_arrive() -> None:
    bars = _bars(n=500)
    early = state_vectors(bars.head(350), SPEC)
    late = state_vectors(bars, SPEC).head(early.height)
    assert np.array_equal(early["embedding"].to_numpy(), late["embedding"].to_numpy())


def test_states_are_scale_free_and_independent_per_symbol() -> None:
    one = state_vectors(_bars("AAA", seed=3), SPEC)
    scaled = state_vectors(_bars("BBB", seed=3, scale=7.5), SPEC)
    assert np.allclose(one["embedding"].to_numpy(), scaled["embedding"].to_numpy(), atol=1e-5)
    both = state_vectors(pl.concat([_bars("BBB", seed=9), _bars("AAA", seed=3)]), SPEC)
    alone = both.filter(pl.col(SYMBOL) == "AAA")
    assert np.allclose(alone["embedding"].to_numpy(), one["embedding"].to_numpy())


def test_row_order_and_partial_regime_labels_do_not_move_rows() -> None:
    bars = _bars(n=420)
    spec = EmbeddingSpec()  # with the regime group
    labels = bars.tail(50).select(SYMBOL, TS, pl.lit([0.9, 0.1]).alias("probs"))
    ordered = state_vectors(bars, spec, labels)
    shuffled = state_vectors(bars.sample(fraction=1.0, shuffle=True, seed=5), spec, labels)
    assert ordered.equals(shuffled)
    no_labels = state_vectors(bars, spec, labels.head(0))
    assert ordered[TS].to_list() == no_labels[TS].to_list()
    regime = ordered["embedding"].to_numpy()[:, -4:]
    weight = spec.weight("regime") / 2.0
    assert np.allclose(regime[-1], np.array([0.9, 0.1, 0.0, 0.0]) * weight)
    assert np.allclose(regime[0], np.full(4, 0.25) * weight)
    # every other component ignores the labels
    rest = no_labels["embedding"].to_numpy()[:, :-4]
    assert np.array_equal(ordered["embedding"].to_numpy()[:, :-4], rest)


def test_a_flat_price_has_no_state() -> None:
    bars = _bars(n=400).with_columns(pl.lit(50.0).alias(CLOSE))
    assert state_vectors(bars, SPEC).is_empty()


def test_versions_name_the_window_weights_and_regime_model() -> None:
    assert EmbeddingSpec().version == EmbeddingSpec().version
    assert EmbeddingSpec(window=63).version.startswith("v1-w63-")
    assert EmbeddingSpec(window=42).version != EmbeddingSpec(window=63).version
    assert EmbeddingSpec(regime_model=None).version != EmbeddingSpec().version
    heavier = EmbeddingSpec(weights={**EmbeddingSpec().weights, "path": 3.0})
    assert heavier.version != EmbeddingSpec().version
    assert len(set(path_lags(63))) == 16 and path_lags(63)[-1] == 63


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"window": 10}, "window"),
        ({"window": 300}, "window"),
        ({"weights": {"nope": 1.0}}, "unknown component groups"),
        ({"weights": {"path": -1.0}}, "finite and >= 0"),
        ({"weights": dict.fromkeys(GROUPS, 0.0)}, "at least one"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        EmbeddingSpec(**kwargs)  # type: ignore[arg-type]


def test_forward_returns_and_paths_stop_at_what_was_known() -> None:
    bars = _bars(n=100)
    anchors = bars.select(SYMBOL, TS).gather([10, 90])
    known = bars[TS][95]
    returns = forward_returns(bars, anchors, (1, 5, 20), known_until=known)
    close = bars[CLOSE]
    assert returns["ret_5"].to_list() == pytest.approx(
        [close[15] / close[10] - 1, close[95] / close[90] - 1]
    )
    assert returns["ret_20"][1] is None
    paths = price_paths(bars, anchors, before=5, after=20, known_until=known)
    late = paths.filter(pl.col(TS) == bars[TS][90])
    assert late["offset"].to_list() == list(range(-5, 6))
    assert fan(paths.filter(pl.col("offset") >= 0))["count"].to_list()[:6] == [2] * 6


def test_distinct_analogs_keep_one_state_per_episode() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    candidates = pl.DataFrame(
        {
            SYMBOL: ["A", "A", "B", "A", "A"],
            TS: [start, start + timedelta(days=3), start, start + timedelta(days=90), start],
            "distance": [0.1, 0.2, 0.3, 0.4, 0.5],
        }
    )
    chosen = distinct_analogs(candidates, 5, timedelta(days=30))
    assert chosen["distance"].to_list() == [0.1, 0.3, 0.4]
    assert distinct_analogs(candidates, 2, timedelta(days=30)).height == 2
