"""Regime jobs: a fit asked for through the API, and the scheduled refit of the watchlist."""

from __future__ import annotations

from typing import Any

from api.domain.regimes.fits import fit_regime_run, fit_spec, fit_summary, fit_window
from api.domain.regimes.schemas import FitParams, RefitParams
from api.lib.jobs import JobContext, job
from engine.regimes.runs import run_regime_fit

__all__ = ["fit_regimes_job", "refit_regimes_job"]


@job("regimes.fit", params=FitParams)
def fit_regimes_job(ctx: JobContext, params: FitParams) -> dict[str, Any]:
    """Fit a regime model on stored bars; store the run with filtered and smoothed labels."""
    start, end = fit_window(params)
    run_id, result = run_regime_fit(
        ctx.database_url,
        fit_spec(params),
        params.symbols,
        start=start,
        end=end,
        interval=params.interval,
        progress=ctx.steps,
        timeout=ctx.settings.connect_timeout,
    )
    ctx.invalidate("regimes")
    return fit_summary(run_id, result)


@job("regimes.refit", params=RefitParams, schedule="30 22 * * 1-5")
def refit_regimes_job(ctx: JobContext, params: RefitParams) -> dict[str, Any]:
    """Refit the default regime model on the watchlist symbols that have daily bars."""
    settings = ctx.settings
    summary = fit_regime_run(
        settings,
        ctx.database_url,
        model=params.model or settings.regime_model,
        n_states=params.n_states or settings.regime_states,
        symbols=params.symbols or list(settings.watchlist),
        progress=ctx.steps,
    )
    if summary["run_id"] is not None:
        ctx.invalidate("regimes")
    return summary
