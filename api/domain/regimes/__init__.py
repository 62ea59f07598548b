"""Regimes: fits (jobs), runs, labels, snapshot, statistics, forecasts."""
