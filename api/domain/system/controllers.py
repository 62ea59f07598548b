"""System routes: liveness, readiness and Prometheus metrics (open: no API key)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST

from api.domain.system.schemas import Health, Readiness
from api.domain.system.services import check_health, check_readiness
from api.lib.observability import metrics_text

__all__ = ["SystemController"]


class SystemController(Controller):
    """Open routes (no API key) for load balancers, orchestrators and Prometheus."""

    tags = ["system"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get("/health", operation_id="getHealth", summary="Liveness, database and cache status")
    async def health(self, request: Request[Any, Any, Any]) -> Health:
        """Always 200 while the process serves; `status` says whether its dependencies answer."""
        state = request.app.state
        return await check_health(state.db_pool, state.cache)

    @get(
        "/ready",
        operation_id="getReadiness",
        summary="Readiness: database, cache and the scheduler's leader state",
        responses={},
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        """200 when the database and cache answer (send traffic here), else 503."""
        state = request.app.state
        readiness = await check_readiness(state.db_pool, state.cache, state.scheduler.state)
        status = HTTP_200_OK if readiness.ready else HTTP_503_SERVICE_UNAVAILABLE
        return Response(readiness, status_code=status)

    @get("/metrics", operation_id="getMetrics", include_in_schema=False)
    async def metrics(self) -> Response[bytes]:
        """Prometheus text exposition of this replica's metrics."""
        return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)
