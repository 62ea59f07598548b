"""Vectorized, regime-aware backtests: specs, execution, metrics, sweeps, walk-forward."""
