"""Analog job: embed new bars as market states (scheduled after the evening ingest)."""

from __future__ import annotations

from typing import Any

from api.domain.analogs.schemas import BuildParams
from api.lib.jobs import JobContext, job
from engine.analogs.service import build_states, default_spec
from engine.io.db import connect

__all__ = ["build_job"]


@job("analogs.build", params=BuildParams, schedule="0 23 * * 1-5")
def build_job(ctx: JobContext, params: BuildParams) -> dict[str, Any]:
    """Embed stored daily bars as market states for the analog search."""
    spec = default_spec(ctx.settings)
    with connect(ctx.database_url, timeout=ctx.settings.connect_timeout, autocommit=True) as conn:
        report = build_states(conn, params.symbols, spec, full=params.full, progress=ctx.steps)
    ctx.invalidate("analogs")
    return {
        "version": report.version,
        "symbols": report.symbols,
        "states": report.states,
        "seconds": round(report.seconds, 3),
    }
