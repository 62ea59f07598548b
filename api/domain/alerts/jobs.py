"""Alert jobs: evaluate the stored rules on the latest bars (also run after each ingest)."""

from __future__ import annotations

from typing import Any

from api.domain.alerts.schemas import EvaluateParams
from api.lib.jobs import JobContext, job
from engine.alerts.runs import evaluate_alerts

__all__ = ["EVALUATE_SCHEDULE", "evaluate_job"]

EVALUATE_SCHEDULE = "every 15m"
"""Between ingests too: rules saved or edited since the last pass get judged soon."""


@job("alerts.evaluate", params=EvaluateParams, schedule=EVALUATE_SCHEDULE)
def evaluate_job(ctx: JobContext, params: EvaluateParams) -> dict[str, Any]:
    """Evaluate alert rules on new bars; record, publish and deliver their events."""
    outcome = evaluate_alerts(
        ctx.settings,
        ctx.database_url,
        ctx.redis_url,
        rules=params.rules,
        deliver=params.deliver,
    )
    return outcome.summary()
