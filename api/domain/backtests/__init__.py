"""Strategies, backtests and sweeps (jobs), results, equity curves, signals."""
