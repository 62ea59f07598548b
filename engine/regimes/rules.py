"""`rules` regime model: trend x volatility quadrants from causal thresholds.

A bar is *high-vol* when its volatility feature is above a threshold: a fixed level, or
the `quantile` of the symbol's own volatility over the trailing `window` bars (with
`expanding=True`: over all its bars so far, from `window` bars of history on), the
current bar included and never a later one. It is in a *downtrend* when its trend feature
is below `trend_threshold` (0: a falling price). Bars whose inputs are still warming up
get no label (null).

State order, fixed by construction (volatility bucket first, then trend; calm to
turbulent, i.e. ascending volatility and, within a bucket, the uptrend first):

    4 states: 0 = low-vol uptrend, 1 = low-vol downtrend,
              2 = high-vol uptrend, 3 = high-vol downtrend   (2 * high_vol + downtrend)
    2 states: 0 = low vol, 1 = high vol                       (volatility only)

The same rule runs three ways: `rules_labels` (Polars, lazy, vectorized), the DuckDB SQL of
`rules_labels_sql` (window functions; tested equal), and `RulesModel`, the RegimeModel
interface that walk-forward fitting and persistence use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import linear_sum_assignment

from engine.features.names import FEATURE_NAMES
from engine.features.per_symbol import Presorted, check_window, guard
from engine.features.pipeline import FEATURES, feature_names, stage, with_features
from engine.features.sql import EXPANDING, features_query, number, quote, run_sql, trailing
from engine.regimes.base import FloatArray, RegimeParams
from engine.schema import REGIME, SYMBOL, TS

__all__ = [
    "RULES_STATE_NAMES",
    "RulesConfig",
    "RulesModel",
    "rules_labels",
    "rules_labels_sql",
    "rules_sql",
]

RULES_STATE_NAMES: Final[dict[int, tuple[str, ...]]] = {
    4: ("low-vol uptrend", "low-vol downtrend", "high-vol uptrend", "high-vol downtrend"),
    2: ("low vol", "high vol"),
}
_EXPANDING_WINDOW: Final = 1 << 30  # a rolling window longer than any symbol's history


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The rule: which features, which thresholds. Validated on construction."""

    n_states: int = 4
    vol_feature: str = "realized_vol_20d"
    """Volatility column: a registered feature name or a column already in the frame."""
    trend_feature: str = "momentum_63d"
    """Trend column (4 states only): a registered feature name or an existing column."""
    quantile: float = 0.75
    """High-vol means above this quantile of the symbol's own volatility history."""
    window: int = 252
    """Bars of history for the quantile: trailing window, or minimum history if expanding."""
    expanding: bool = False
    vol_threshold: float | None = None
    """A fixed volatility level instead of the quantile (same units as the feature)."""
    trend_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.n_states not in RULES_STATE_NAMES:
            raise ValueError(
                f"rules has 2 or 4 states (vol only, or trend x vol), got {self.n_states}"
            )
        check_window(self.window)
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        if self.vol_threshold is not None and not (
            math.isfinite(self.vol_threshold) and self.vol_threshold > 0
        ):
            raise ValueError(f"vol_threshold must be a positive number, got {self.vol_threshold!r}")
        if not math.isfinite(self.trend_threshold):
            raise ValueError("trend_threshold must be finite")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The feature columns the rule reads."""
        return (self.vol_feature,) if self.n_states == 2 else (self.vol_feature, self.trend_feature)


def _columns_to_add(
    columns: list[str], config: RulesConfig, extra: Iterable[str], alias: str
) -> list[str]:
    """Registered features to compute: `extra` plus rule inputs missing from `columns`;
    ValueError for an input that is neither a column nor a registered feature, or for an
    `alias` that would overwrite a column (the simulator's true `regime`, say)."""
    if alias in columns:
        raise ValueError(f"the frame already has a column {alias!r}; pass another alias")
    for name in config.inputs:
        if name not in columns and name not in FEATURES:
            raise ValueError(
                f"rules input {name!r} is neither a column of the frame nor a known feature; "
                f"known features: {', '.join(FEATURE_NAMES)}"
            )
    wanted = [*feature_names(list(extra)), *(n for n in config.inputs if n not in columns)]
    return [name for name in dict.fromkeys(wanted) if name not in columns]


def _warmup(name: str) -> int | None:
    """Leading null bars per symbol of the registered feature `name`."""
    return next((spec.warmup for key, spec in FEATURES.items() if key == name), None)


def _fast_threshold(
    config: RulesConfig, vol: pl.Expr, warmup: int | None, at: Presorted
) -> pl.Expr:
    """Trailing-quantile threshold over the whole sorted column, masked like `.over`'s.

    Polars' rolling quantile is several times slower on a column with nulls, so the
    warm-up nulls are filled and the windows that held one are nulled afterwards: by the
    feature's known warm-up, or (for a column of unknown origin) by counting nulls.
    """
    flat = vol.fill_null(0.0).rolling_quantile(config.quantile, "linear", config.window)
    if warmup is None:
        flat = pl.when(vol.is_null().cast(pl.Int32).rolling_sum(config.window) == 0).then(flat)
        warmup = 0
    return at.after_warmup(flat, warmup + config.window - 1)


def _threshold(
    config: RulesConfig, vol: pl.Expr, warmup: int | None, fast: Presorted | None
) -> pl.Expr:
    if config.vol_threshold is not None:
        return pl.lit(config.vol_threshold, dtype=pl.Float64)
    if config.expanding:
        quantile = vol.rolling_quantile(
            config.quantile, "linear", _EXPANDING_WINDOW, min_samples=config.window
        )
        return fast.over(quantile) if fast else quantile.over(SYMBOL)
    if fast:
        return _fast_threshold(config, vol, warmup, fast)
    full = vol.rolling_quantile(config.quantile, "linear", config.window, min_samples=config.window)
    return full.over(SYMBOL)


def _regime(config: RulesConfig, vol: pl.Expr, threshold: pl.Expr) -> pl.Expr:
    high_vol = (vol > threshold).cast(pl.Int32)
    if config.n_states == 2:
        return high_vol
    downtrend = (pl.col(config.trend_feature) < config.trend_threshold).cast(pl.Int32)
    return 2 * high_vol + downtrend


def rules_labels(
    lf: pl.LazyFrame,
    config: RulesConfig | None = None,
    *,
    features: Iterable[str] = (),
    alias: str = REGIME,
    presorted: bool = True,
) -> pl.LazyFrame:
    """`lf` plus the causal rules regime of every bar (`alias`, Int32; null while warming
    up), the rule's input features, and any `features` asked for.

    `presorted=True` (default, canonical frames) uses the fast forms; collecting raises
    ValueError when a symbol's bars are not together and in time order (as sorted by
    symbol, ts), when prices are null or the frame has no rows.
    `presorted=False` uses `.over(SYMBOL)` throughout: symbols in any order or interleaved,
    each symbol's bars in time order.
    """
    config = config or RulesConfig()
    added = _columns_to_add(lf.collect_schema().names(), config, features, alias)
    lf = guard(lf, presorted=False, non_empty="rules_labels needs at least one bar")
    vol = pl.col(config.vol_feature)
    warmup = _warmup(config.vol_feature) if config.vol_feature in added else None
    if not presorted:
        if added:
            lf = with_features(lf, added, presorted=False)
        threshold = _threshold(config, vol, warmup, None)
        return lf.with_columns(_regime(config, vol, threshold).alias(alias))
    staged = stage(lf, added)
    labelled = staged.frame.with_columns(
        FEATURES[name](presorted=staged.layout) for name in feature_names(added)
    ).with_columns(
        _regime(config, vol, _threshold(config, vol, warmup, staged.layout)).alias(alias)
    )
    return labelled.drop(staged.helpers)


def rules_sql(source_query: str, config: RulesConfig, *, columns: list[str], alias: str) -> str:
    """DuckDB SQL adding the regime `alias` to the rows of `source_query` (which must
    carry the rule's input columns), sorted by symbol, ts."""
    vol, trend = quote(config.vol_feature), quote(config.trend_feature)
    if config.vol_threshold is not None:
        threshold = number(config.vol_threshold)
    else:
        frame = EXPANDING if config.expanding else trailing(config.window)
        enough = f">= {config.window}" if config.expanding else f"= {config.window}"
        threshold = (
            f"CASE WHEN count({vol}) OVER {frame} {enough} "
            f"THEN quantile_cont({vol}, {number(config.quantile)}) OVER {frame} END"
        )
    high_vol = f"CAST({vol} > __threshold AS INTEGER)"
    regime = high_vol
    if config.n_states == 4:
        regime = f"2 * {high_vol} + CAST({trend} < {number(config.trend_threshold)} AS INTEGER)"
    kept = ", ".join(quote(c) for c in columns)
    return f"""
WITH __features AS ({source_query}),
__thresholds AS (SELECT *, {threshold} AS __threshold FROM __features)
SELECT {kept}, CAST({regime} AS INTEGER) AS {quote(alias)}
FROM __thresholds ORDER BY "{SYMBOL}", "{TS}"
"""


def rules_labels_sql(
    frame: pl.DataFrame | pl.LazyFrame,
    config: RulesConfig | None = None,
    *,
    features: Iterable[str] = (),
    alias: str = REGIME,
) -> pl.DataFrame:
    """What `rules_labels` returns, computed by DuckDB SQL window functions (features and
    thresholds included), sorted by symbol, ts; ValueError on a frame without rows and on
    the bad input `rules_labels` refuses."""
    config = config or RulesConfig()
    bars = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    if bars.is_empty():
        raise ValueError("rules_labels_sql needs at least one bar")
    added = _columns_to_add(bars.columns, config, features, alias)
    features_sql = features_query("bars", added, columns=bars.columns)
    return run_sql(
        bars, rules_sql(features_sql, config, columns=[*bars.columns, *added], alias=alias)
    )


class RulesModel:
    """The rules model behind the RegimeModel interface, on one symbol's features (T, F).

    It reads the return series (feature 0, log returns, as for every model) and derives
    the rule's inputs the way the registered features do: volatility is the annualized
    standard deviation of the last `vol_window` returns (`realized_vol_20d`), trend the sum
    of the last `trend_window` returns (`momentum_63d`). `fit` fixes the volatility
    threshold (`vol_threshold`, else the `quantile` of the training window's volatility)
    and estimates, from the training labels, each state's feature means and variances, the
    transition matrix (unvisited states: uniform rows) and start probabilities (the share
    of time in each state). `filter` labels each bar from its own trailing windows and the
    fitted thresholds, so it is causal; it returns one-hot rows, NaN while warming up.
    `smooth` equals `filter`: a rule has no two-sided version.

    States follow the module's fixed order, not `order_states` (the order is by
    construction). If a caller relabels fitted parameters (`match_states`), `filter`
    follows the relabelling.
    """

    name: ClassVar[str] = "rules"
    causal_filter: ClassVar[bool] = True

    def __init__(
        self,
        n_states: int = 4,
        *,
        quantile: float = 0.75,
        vol_threshold: float | None = None,
        trend_threshold: float = 0.0,
        vol_window: int = 20,
        trend_window: int = 63,
        annualization: float = 252,
    ) -> None:
        self.config = RulesConfig(
            n_states=n_states,
            quantile=quantile,
            vol_threshold=vol_threshold,
            trend_threshold=trend_threshold,
        )
        self.n_states = n_states
        self.vol_window = check_window(vol_window, what="vol_window")
        self.trend_window = check_window(trend_window, minimum=1, what="trend_window")
        if not annualization > 0:
            raise ValueError("annualization must be positive")
        self.annualization = annualization

    def _inputs(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Volatility and trend per bar from the return column (NaN while warming up)."""
        returns = np.asarray(x, dtype=np.float64)[:, 0]
        vol = np.full(returns.shape, np.nan)
        trend = np.full(returns.shape, np.nan)
        if returns.size >= self.vol_window:
            windows = sliding_window_view(returns, self.vol_window)
            vol[self.vol_window - 1 :] = windows.std(axis=1, ddof=1) * math.sqrt(self.annualization)
        if self.config.n_states == 2:
            trend[:] = 0.0
        elif returns.size >= self.trend_window:
            trend[self.trend_window - 1 :] = sliding_window_view(returns, self.trend_window).sum(
                axis=1
            )
        return vol, trend

    def _labels(
        self, vol: FloatArray, trend: FloatArray, vol_threshold: float, trend_threshold: float
    ) -> np.ndarray:
        high_vol = (vol > vol_threshold).astype(np.int64)
        if self.config.n_states == 2:
            return high_vol
        return 2 * high_vol + (trend < trend_threshold).astype(np.int64)

    def _checked(self, x: FloatArray, features: tuple[str, ...]) -> FloatArray:
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(features) or not features:
            raise ValueError(f"x must be (T, F) with F = {len(features)} named features")
        if not np.isfinite(array).all():
            raise ValueError("x has NaN or infinite values: drop warm-up rows first")
        warmup = max(self.vol_window, self.trend_window if self.n_states == 4 else 0)
        if array.shape[0] < warmup + 2:
            raise ValueError(f"rules needs at least {warmup + 2} bars, got {array.shape[0]}")
        return array

    def fit(self, x: FloatArray, features: tuple[str, ...]) -> RegimeParams:
        """Thresholds, per-state statistics and transitions from the training window `x`."""
        array = self._checked(x, features)
        vol, trend = self._inputs(array)
        valid = ~(np.isnan(vol) | np.isnan(trend))
        threshold = self.config.vol_threshold
        if threshold is None:
            if np.ptp(vol[valid]) == 0:
                raise ValueError("volatility is constant on the training window: no regimes")
            threshold = float(np.quantile(vol[valid], self.config.quantile))
        trend_threshold = self.config.trend_threshold
        labels = self._labels(vol, trend, threshold, trend_threshold)[valid]
        rows = array[valid]
        k = self.n_states
        counts = np.bincount(labels, minlength=k)
        means = np.tile(rows.mean(axis=0), (k, 1))
        variances = np.tile(rows.var(axis=0), (k, 1))
        for state in np.flatnonzero(counts):  # K <= 4 states
            means[state] = rows[labels == state].mean(axis=0)
            variances[state] = rows[labels == state].var(axis=0)
        variances = np.maximum(variances, 1e-12)
        transitions = np.zeros((k, k))
        np.add.at(transitions, (labels[:-1], labels[1:]), 1.0)
        leaving = transitions.sum(axis=1, keepdims=True)
        transmat = np.where(leaving > 0, transitions / np.maximum(leaving, 1.0), 1.0 / k)
        return RegimeParams(
            model=self.name,
            features=features,
            means=means,
            variances=variances,
            transmat=transmat,
            startprob=counts / counts.sum(),
            n_obs=int(labels.size),
            n_params=0 if self.config.vol_threshold is not None else 1,
            extra={  # plain numbers and lists: persistence stores them as JSON
                "vol_threshold": threshold,
                "trend_threshold": trend_threshold,
                "vol_window": self.vol_window,
                "trend_window": self.trend_window,
                "state_names": list(RULES_STATE_NAMES[k]),
                "state_counts": counts.tolist(),
                "label_means": means.tolist(),
                "label_variances": variances.tolist(),
            },
        )

    def _relabelling(self, params: RegimeParams) -> np.ndarray:
        """Rule label shown as each state of `params` (identity unless relabelled)."""
        label_means = np.asarray(params.extra.get("label_means", params.means), dtype=np.float64)
        label_variances = np.asarray(
            params.extra.get("label_variances", params.variances), dtype=np.float64
        )
        cost = np.linalg.norm(params.means[:, None] - label_means[None], axis=2) + np.linalg.norm(
            params.variances[:, None] - label_variances[None], axis=2
        )
        cost = cost + 1e-12 * (1 - np.eye(params.n_states))  # ties: keep the label
        rows, cols = linear_sum_assignment(cost)
        return np.asarray(cols[np.argsort(rows)], dtype=np.int64)

    def filter(self, params: RegimeParams, x: FloatArray) -> FloatArray:
        """One-hot causal regime per bar (T, K) under the fitted thresholds; NaN rows while
        the volatility/trend windows warm up."""
        if params.n_states != self.n_states:
            raise ValueError(f"params have {params.n_states} states, the model {self.n_states}")
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(params.features):
            raise ValueError(f"x must be (T, {len(params.features)})")
        if not np.isfinite(array).all():
            raise ValueError("x has NaN or infinite values: drop warm-up rows first")
        vol, trend = self._inputs(array)
        valid = ~(np.isnan(vol) | np.isnan(trend))
        labels = self._labels(
            vol,
            trend,
            float(params.extra["vol_threshold"]),
            float(params.extra["trend_threshold"]),
        )
        probs = np.full((array.shape[0], self.n_states), np.nan)
        shown_as = self._relabelling(params)
        probs[valid] = (labels[valid, None] == shown_as[None, :]).astype(np.float64)
        return probs

    def smooth(self, params: RegimeParams, x: FloatArray) -> FloatArray:
        """The filtered labels: a rule has no two-sided version (see the class doc)."""
        return self.filter(params, x)
