"""System routes: liveness with database and cache status."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from api.domain.system.schemas import Health
from api.domain.system.services import check_health

__all__ = ["SystemController"]


class SystemController(Controller):
    """Open routes (no API key) for load balancers and humans."""

    tags = ["system"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get("/health", operation_id="getHealth", summary="Liveness, database and cache status")
    async def health(self, request: Request[Any, Any, Any]) -> Health:
        """Always 200 while the process serves; `status` says whether its dependencies answer."""
        state = request.app.state
        return await check_health(state.db_pool, state.cache)
