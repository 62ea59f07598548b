"""Regime engine benchmarks: figures side by side with their baselines, in one run.

    uv run python bench/regimes.py [--symbols 1000] [--days 2520] [--repeat 3] [--threshold q]

Part 1, `bench_features_rules`: the eleven registered features plus the `rules` regime over
N symbols x D days of synthetic bars (2.52 M rows by default), as rows/s of

- ours: `rules_labels(lf, config, features=FEATURE_NAMES).collect()` (fast form);
- (a) plain Polars: the same call with `presorted=False`, i.e. `.over("symbol")` throughout;
- (b) NumPy on the (symbol x day) panel, which assumes every symbol trades every day (in
  NumPy's favour): cumulative sums for windows of returns and ranges, a sliding window
  (two-pass std) for the price z-score, whose cumulative-sum form misses the tolerance by
  3x, and a sliding window quantile for the threshold;
- (c) DuckDB SQL window functions: `rules_labels_sql` on the same frame.

Polars runs on its default engine (streaming in Polars 2). The HMM benchmark lives in
`bench/regimes_hmm.py` for now; a `bench_hmm` here would sit next to
`bench_features_rules` and be printed by `main`.

Every output column of (a), (b), (c) is asserted equal to ours (float tolerance; regime
labels exactly). `--threshold` picks the rule's volatility threshold: `quantile` (default
rule: above the 75th percentile of the trailing 252 bars), `fixed` (20 % annualized, no
quantile: a features-dominated figure) or `both`. An ablation then shows what each
optimisation of the fast form buys. Best of `--repeat` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from engine.features.names import FEATURE_NAMES, FeatureName
from engine.features.per_symbol import Presorted, guard
from engine.features.pipeline import FEATURES, with_features
from engine.providers.synthetic import SyntheticBarsQuery, resolve_symbols, simulate
from engine.regimes.rules import RulesConfig, rules_labels, rules_labels_sql
from engine.schema import CLOSE, HIGH, LOW, OPEN, REGIME, SYMBOL

THRESHOLDS: dict[str, RulesConfig] = {
    "quantile": RulesConfig(),
    "fixed": RulesConfig(vol_threshold=0.20),
}
OUTPUTS = [*FEATURE_NAMES, REGIME]
ANNUALIZE = math.sqrt(252)


def best_of(action: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of `repeat` runs of `action`, after one warm-up run."""
    action()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


# --- (b) NumPy on the (symbol x day) panel ---------------------------------------------


def _pad(values: np.ndarray, warmup: int) -> np.ndarray:
    """`values` (N, T - warmup) right-aligned in an (N, T) array, NaN in front."""
    out = np.full((values.shape[0], values.shape[1] + warmup), np.nan)
    out[:, warmup:] = values
    return out


def _window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sums of each run of `window` consecutive columns: (N, T - window + 1)."""
    sums = np.cumsum(values, axis=1)
    out = sums[:, window - 1 :].copy()
    out[:, 1:] -= sums[:, :-window]
    return out


def _rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Sample std of each window from cumulative sums of x and x^2: (N, T - window + 1)."""
    total, squares = _window_sums(values, window), _window_sums(values * values, window)
    variance = (squares - total * total / window) / (window - 1)
    std: np.ndarray = np.sqrt(np.maximum(variance, 0.0))
    return std


def _trailing_quantile(values: np.ndarray, window: int, q: float) -> np.ndarray:
    """Linear `q` quantile of each trailing window, NaN where a window holds a NaN."""
    out = np.full_like(values, np.nan)
    for rows in np.array_split(np.arange(values.shape[0]), max(1, values.shape[0] // 50)):
        windows = sliding_window_view(values[rows], window, axis=1)  # memory: 50 rows at once
        out[rows, window - 1 :] = np.quantile(windows, q, axis=2)
    return out


def numpy_features_rules(bars: pl.DataFrame, config: RulesConfig) -> dict[str, np.ndarray]:
    """Features and rules regime of a rectangular panel (every symbol on every day)."""
    n_symbols = bars[SYMBOL].n_unique()
    shape = (n_symbols, bars.height // n_symbols)
    open_, high, low, close = (bars[c].to_numpy().reshape(shape) for c in (OPEN, HIGH, LOW, CLOSE))
    log_price = np.log(close)
    returns = np.diff(log_price, axis=1)
    out: dict[str, np.ndarray] = {
        "log_return": _pad(returns, 1),
        "simple_return": _pad(close[:, 1:] / close[:, :-1] - 1.0, 1),
    }
    for window in (20, 60):
        out[f"realized_vol_{window}d"] = _pad(_rolling_std(returns, window) * ANNUALIZE, window)
    range_sq = np.log(high / low) ** 2
    body_sq = np.log(close / open_) ** 2
    parkinson = _window_sums(range_sq / (4.0 * math.log(2.0)), 20) / 20
    garman_klass = _window_sums(0.5 * range_sq - (2.0 * math.log(2.0) - 1.0) * body_sq, 20) / 20
    out["parkinson_vol_20d"] = _pad(np.sqrt(np.maximum(parkinson, 0.0)) * ANNUALIZE, 19)
    out["garman_klass_vol_20d"] = _pad(np.sqrt(np.maximum(garman_klass, 0.0)) * ANNUALIZE, 19)
    out["sma_50d"] = _pad(_window_sums(close, 50) / 50, 49)
    weights = np.array([m * (20 - m) for m in range(1, 20)]) * 6.0 / (20 * (20 * 20 - 1))
    out["trend_slope_20d"] = _pad(sliding_window_view(returns, 19, axis=1) @ weights, 19)
    out["momentum_63d"] = _pad(log_price[:, 63:] - log_price[:, :-63], 63)
    out["drawdown"] = close / np.maximum.accumulate(close, axis=1) - 1.0
    windows = sliding_window_view(close, 20, axis=1)  # two-pass std: prices need it
    spread = windows.std(axis=2, ddof=1)
    zscore = (close[:, 19:] - windows.mean(axis=2)) / np.where(spread > 0, spread, np.nan)
    out["zscore_20d"] = _pad(zscore, 19)
    vol, trend = out[config.vol_feature], out[config.trend_feature]
    if config.vol_threshold is not None:
        threshold = np.full_like(vol, config.vol_threshold)
    else:
        threshold = _trailing_quantile(vol, config.window, config.quantile)
    regime = (vol > threshold).astype(np.float64)
    if config.n_states == 4:
        regime = 2.0 * regime + (trend < config.trend_threshold)
        regime[np.isnan(trend)] = np.nan
    regime[np.isnan(vol) | np.isnan(threshold)] = np.nan
    out[REGIME] = regime
    return {name: values.ravel() for name, values in out.items()}


# --- checks ------------------------------------------------------------------------------


def _as_float(values: pl.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, pl.Series):
        return values.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.asarray(values, dtype=np.float64)


def assert_same(
    ours: pl.DataFrame, other: pl.DataFrame | dict[str, np.ndarray], label: str
) -> None:
    """Every output column equal: floats to 1e-9 relative (1e-12 absolute), NaN/null alike,
    regime labels exactly."""
    for name in OUTPUTS:
        mine, theirs = _as_float(ours[name]), _as_float(other[name])
        missing = np.isnan(mine)
        if not np.array_equal(missing, np.isnan(theirs)):
            raise AssertionError(f"{label}: {name} is missing on different rows")
        if name == REGIME:
            differ = int((mine[~missing] != theirs[~missing]).sum())
        else:
            close = np.isclose(mine[~missing], theirs[~missing], rtol=1e-9, atol=1e-12)
            differ = int((~close).sum())
        if differ:
            raise AssertionError(f"{label}: {name} differs on {differ} rows")


# --- part 1 ------------------------------------------------------------------------------


def bench_features_rules(
    symbols: int = 1000,
    days: int = 2520,
    repeat: int = 3,
    threshold: str = "quantile",
    *,
    ablate: bool = True,
) -> dict[str, Any]:
    """Rows/s of features + rules labels: ours and the three baselines, values checked."""
    config = THRESHOLDS[threshold]
    query = SyntheticBarsQuery(symbols=resolve_symbols(str(symbols)), n_days=days)
    bars = simulate(query).drop(REGIME)
    lf = bars.lazy()

    def ours() -> pl.DataFrame:
        return rules_labels(lf, config, features=FEATURE_NAMES).collect()

    def plain_polars() -> pl.DataFrame:
        return rules_labels(lf, config, features=FEATURE_NAMES, presorted=False).collect()

    def numpy() -> dict[str, np.ndarray]:
        return numpy_features_rules(bars, config)

    def duckdb_sql() -> pl.DataFrame:
        return rules_labels_sql(bars, config, features=FEATURE_NAMES)

    reference = ours()
    assert_same(reference, plain_polars(), "plain Polars")
    assert_same(reference, numpy(), "NumPy")
    assert_same(reference, duckdb_sql(), "DuckDB")
    seconds = {
        "ours": best_of(ours, repeat),
        "plain Polars (.over)": best_of(plain_polars, repeat),
        "NumPy": best_of(numpy, repeat),
        "DuckDB SQL": best_of(duckdb_sql, repeat),
    }
    return {
        "rows": bars.height,
        "threshold": threshold,
        "seconds": seconds,
        "ablation": ablation(lf, config, repeat) if ablate else {},
    }


def ablation(lf: pl.LazyFrame, config: RulesConfig, repeat: int) -> dict[str, float]:
    """Seconds of the fast form's steps, each next to what it replaces (Polars only)."""
    vol_name: FeatureName = "realized_vol_20d"
    window = 252
    with_vol = with_features(lf, [vol_name]).collect().lazy()
    vol = pl.col(vol_name)
    filled_quantile = vol.fill_null(0.0).rolling_quantile(0.75, "linear", window)
    masked_after = FEATURES[vol_name].warmup + window - 1
    standalone = Presorted()  # boundaries computed inside each expression
    steps: dict[str, Callable[[], pl.DataFrame]] = {
        "features: .over(symbol)": lambda: with_features(
            lf, FEATURE_NAMES, presorted=False
        ).collect(),
        "features: flat, boundaries recomputed per feature": lambda: lf.with_columns(
            FEATURES[name](presorted=standalone) for name in FEATURE_NAMES
        ).collect(),
        "features: flat, boundaries + shared inputs staged once, guarded": lambda: with_features(
            lf, FEATURE_NAMES
        ).collect(),
        "guard alone (order + null checks, boundaries from the symbols)": lambda: guard(
            lf, presorted=True, null_free=[OPEN, HIGH, LOW, CLOSE]
        ).collect(),
        "vol quantile: .over(symbol), null warm-up": lambda: with_vol.select(
            vol.rolling_quantile(0.75, "linear", window, min_samples=window).over(SYMBOL)
        ).collect(),
        "vol quantile: flat, warm-up filled then masked": lambda: with_vol.select(
            standalone.after_warmup(filled_quantile, masked_after)
        ).collect(),
        "ours on the in-memory engine (default: streaming)": lambda: rules_labels(
            lf, config, features=FEATURE_NAMES
        ).collect(engine="in-memory"),
    }
    return {name: best_of(step, repeat) for name, step in steps.items()}


def print_features_rules(result: dict[str, Any]) -> None:
    """The part-1 table: rows/s per implementation, and ours against the best baseline."""
    rows, seconds = result["rows"], result["seconds"]
    best_baseline = min(v for k, v in seconds.items() if k != "ours")
    print(f"\nfeatures + rules labels, {rows:,} rows, threshold: {result['threshold']}")
    print("| implementation | rows/s | seconds | ours vs it |")
    print("| --- | ---: | ---: | ---: |")
    for name, value in seconds.items():
        ratio = "" if name == "ours" else f"{value / seconds['ours']:.2f}x"
        print(f"| {name} | {rows / value:,.0f} | {value:.3f} | {ratio} |")
    print(f"ours vs best baseline: {best_baseline / seconds['ours']:.2f}x (goal >= 1.5x)")
    if not result["ablation"]:
        return
    print("\n| ablation (Polars only) | rows/s | seconds |")
    print("| --- | ---: | ---: |")
    for name, value in result["ablation"].items():
        print(f"| {name} | {rows / value:,.0f} | {value:.3f} |")


def main() -> None:
    """Run the regime benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", choices=[*THRESHOLDS, "both"], default="both")
    parser.add_argument("--no-hmm", action="store_true", help="skip the HMM fit benchmark")
    args = parser.parse_args()
    thresholds = list(THRESHOLDS) if args.threshold == "both" else [args.threshold]
    for threshold in thresholds:
        ablate = threshold == thresholds[-1]  # once: it does not depend on the threshold
        result = bench_features_rules(
            args.symbols, args.days, args.repeat, threshold, ablate=ablate
        )
        print_features_rules(result)
    if not args.no_hmm:  # part 2: bench/regimes_hmm.py, run in the same process
        import logging

        from regimes_hmm import bench_hmm, report_hmm

        logging.getLogger("hmmlearn").setLevel(logging.ERROR)
        report_hmm(bench_hmm(args.symbols, args.days, 20), 20)


if __name__ == "__main__":
    main()
