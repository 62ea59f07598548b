"""`synthetic` provider: a seeded regime-switching market with known true regimes.

One market-wide Markov chain drives the regime of every symbol (regimes are ordered by
ascending volatility, as the regime engine orders its states). Daily log returns are
`drift[s] + vol[s] * (sqrt(rho) * market_t + sqrt(1 - rho) * own_it)`, so symbols are
correlated through a common factor. Bars fall on business days from `origin`; the series
depends on the seed, the parameters and the symbols, never on `start`/`end`, which only
filter, so incremental loads extend the same history.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import numpy as np
import polars as pl

from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.standard.bars import BarsQuery
from engine.providers.standard.instruments import InstrumentsQuery, select_listed
from engine.schema import CLOSE, HIGH, LOW, OPEN, REGIME, SYMBOL, TS, VOLUME, validate_bars

__all__ = ["PROVIDER", "SyntheticBarsQuery", "resolve_symbols", "simulate", "simulate_returns"]

# Daily drift and volatility per regime, ascending volatility: calm, normal, turbulent.
_PRESETS: Final[dict[int, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]]] = {
    # n_states: (drifts, vols, stay probabilities)
    2: ((0.0006, -0.0010), (0.007, 0.022), (0.99, 0.97)),
    3: ((0.0007, 0.0002, -0.0015), (0.006, 0.012, 0.028), (0.99, 0.98, 0.96)),
}


class SyntheticBarsQuery(BarsQuery, frozen=True, kw_only=True):
    """Bars of a simulated market: the standard query plus the simulator's parameters."""

    seed: int = 42
    n_states: int = 2
    n_days: int = 2520
    origin: date = date(2010, 1, 4)
    correlation: float = 0.5
    drifts: tuple[float, ...] | None = None
    vols: tuple[float, ...] | None = None
    transition: tuple[tuple[float, ...], ...] | None = None
    start_price: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_states not in _PRESETS and not (self.drifts and self.vols and self.transition):
            raise ValueError(
                f"n_states={self.n_states} needs drifts, vols and transition (presets: 2, 3)"
            )
        if not 0 <= self.correlation < 1:
            raise ValueError("correlation must be in [0, 1)")
        if self.n_days < 2:
            raise ValueError("n_days must be at least 2")
        drifts, vols, transition = self.parameters()
        if not len(drifts) == len(vols) == len(transition) == self.n_states:
            raise ValueError("drifts, vols and transition must each have n_states entries")
        if any(len(row) != self.n_states for row in transition):
            raise ValueError(f"each transition row needs n_states={self.n_states} probabilities")
        if any(v <= 0 for v in vols):
            raise ValueError("vols must be positive")
        if list(vols) != sorted(vols):
            raise ValueError(
                "vols must be ascending: regimes are numbered from calmest to most volatile"
            )
        matrix = np.asarray(transition, dtype=float)
        if matrix.shape != (self.n_states, self.n_states) or (matrix < 0).any():
            raise ValueError("transition must be a non-negative n_states x n_states matrix")
        if not np.allclose(matrix.sum(axis=1), 1.0):
            raise ValueError("each transition row must sum to 1")

    def parameters(
        self,
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[float, ...], ...]]:
        """Drifts, vols and transition matrix: the explicit ones, else the preset's."""
        preset = _PRESETS.get(self.n_states)
        drifts = self.drifts or (preset[0] if preset else ())
        vols = self.vols or (preset[1] if preset else ())
        if self.transition is not None:
            return drifts, vols, self.transition
        assert preset is not None
        stay = preset[2]
        n = self.n_states
        rows = tuple(
            tuple(stay[i] if i == j else (1 - stay[i]) / (n - 1) for j in range(n))
            for i in range(n)
        )
        return drifts, vols, rows


def resolve_symbols(spec: str) -> tuple[str, ...]:
    """`"500"` -> SYN0000..SYN0499; otherwise the comma-separated names given."""
    spec = spec.strip()
    if spec.isdigit():
        count = int(spec)
        if not 0 < count <= 100_000:
            raise ValueError("the number of synthetic symbols must be between 1 and 100000")
        return tuple(f"SYN{i:04d}" for i in range(count))
    return tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))


def _regime_path(rng: np.random.Generator, transition: np.ndarray, n_days: int) -> np.ndarray:
    """A Markov chain path of `n_days` states, started from the stationary distribution."""
    eigenvalues, eigenvectors = np.linalg.eig(transition.T)
    stationary = np.real(eigenvectors[:, np.argmin(np.abs(eigenvalues - 1))])
    stationary = stationary / stationary.sum()
    cumulative = np.cumsum(transition, axis=1)
    draws = rng.random(n_days)
    path = np.empty(n_days, dtype=np.int32)
    path[0] = np.searchsorted(np.cumsum(stationary), draws[0])
    for t in range(1, n_days):  # sequential by nature: each state depends on the last
        path[t] = np.searchsorted(cumulative[path[t - 1]], draws[t])
    return np.minimum(path, len(transition) - 1)


def simulate(query: SyntheticBarsQuery) -> pl.DataFrame:
    """Canonical bars plus the true `regime` for every symbol and business day."""
    drifts, vols, transition = query.parameters()
    # One stream per purpose, each filled symbol by symbol: a symbol's series depends on its
    # position, not on how many symbols follow it, so loading 500 then 1,000 symbols agrees.
    regime_rng, market_rng, own_rng, open_rng, high_rng, low_rng, volume_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(query.seed).spawn(7)
    )
    n_days, n_symbols = query.n_days, len(query.symbols)
    regimes = _regime_path(regime_rng, np.asarray(transition, dtype=float), n_days)
    # Arrays are (symbol, day): C-order ravel is then sorted by symbol, ts at no copy cost.
    drift = np.asarray(drifts)[regimes][None, :]
    vol = np.asarray(vols)[regimes][None, :]
    market = market_rng.standard_normal((1, n_days))
    own = own_rng.standard_normal((n_symbols, n_days))
    rho = query.correlation
    log_returns = drift + vol * (np.sqrt(rho) * market + np.sqrt(1 - rho) * own)
    log_returns[:, 0] = 0.0
    close = query.start_price * np.exp(np.cumsum(log_returns, axis=1))
    prev_close = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    open_ = prev_close * np.exp(0.2 * vol * open_rng.standard_normal((n_symbols, n_days)))
    shape = (n_symbols, n_days)
    high = np.maximum(open_, close) * np.exp(np.abs(high_rng.standard_normal(shape)) * 0.5 * vol)
    low = np.minimum(open_, close) * np.exp(-np.abs(low_rng.standard_normal(shape)) * 0.5 * vol)
    noise = np.exp(0.3 * volume_rng.standard_normal((n_symbols, n_days)))
    volume = np.round(1e6 * (vol / min(vols)) * noise)
    calendar_days = n_days * 7 // 5 + 7  # enough calendar to hold n_days business days
    days = pl.date_range(query.origin, query.origin + timedelta(days=calendar_days), eager=True)
    days = days.filter(days.dt.weekday() <= 5).head(n_days)
    ts = days.cast(pl.Datetime("us", "UTC")).to_numpy()
    symbol_index = pl.Series(np.repeat(np.arange(n_symbols, dtype=np.uint32), n_days))
    return pl.DataFrame(
        {
            SYMBOL: pl.Series(query.symbols, dtype=pl.String).gather(symbol_index),
            TS: np.tile(ts, n_symbols),
            OPEN: open_.ravel(),
            HIGH: high.ravel(),
            LOW: low.ravel(),
            CLOSE: close.ravel(),
            VOLUME: volume.ravel(),
            REGIME: np.tile(regimes, n_symbols),
        }
    ).with_columns(pl.col(TS).dt.replace_time_zone("UTC"))


def simulate_returns(
    n_states: int = 2, n_days: int = 2520, n_symbols: int = 1, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Daily log returns (n_symbols, n_days, 1) of a simulated market and its true regimes
    (n_days,): the shape regime models take, for tests, notebooks and benchmarks."""
    query = SyntheticBarsQuery(
        symbols=resolve_symbols(str(n_symbols)), n_states=n_states, n_days=n_days + 1, seed=seed
    )
    bars = simulate(query)
    close = bars[CLOSE].to_numpy().reshape(n_symbols, n_days + 1)
    return np.diff(np.log(close), axis=1)[:, :, None], bars[REGIME].to_numpy()[1 : n_days + 1]


def extract(query: SyntheticBarsQuery, context: ProviderContext) -> Raw:
    """The simulated market (no I/O: the 'source' is the simulator)."""
    return simulate(query)


def transform(query: SyntheticBarsQuery, raw: Raw) -> pl.DataFrame:
    """The simulated bars within the query's range, with their true regimes."""
    assert isinstance(raw, pl.DataFrame)
    frame = raw
    frame = frame.filter(query.in_range())
    return validate_bars(frame)


def extract_instruments(query: InstrumentsQuery, context: ProviderContext) -> Raw:
    """Descriptions of the asked synthetic symbols (any name is a valid synthetic symbol)."""
    symbols = list(query.symbols) or list(resolve_symbols(str(query.limit)))
    return pl.DataFrame(
        {
            "symbol": symbols,
            "name": [f"Synthetic regime-switching series {s}" for s in symbols],
            "asset_class": ["synthetic"] * len(symbols),
            "exchange": [None] * len(symbols),
            "currency": ["USD"] * len(symbols),
        },
        schema_overrides={"exchange": pl.String},
    )


PROVIDER: Final = Provider(
    name="synthetic",
    description="Seeded regime-switching simulator; returns the true regime of every bar",
    fetchers={
        "bars": Fetcher(
            dataset="bars",
            query_type=SyntheticBarsQuery,
            extract=extract,
            transform=transform,
            default_ttl=3_600,
            max_symbols=None,
        ),
        "instruments": Fetcher(
            dataset="instruments",
            query_type=InstrumentsQuery,
            extract=extract_instruments,
            transform=select_listed,
            default_ttl=86_400,
            max_symbols=None,
        ),
    },
    resolve_symbols=resolve_symbols,
)
