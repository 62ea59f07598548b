"""The Litestar application: `create_app()` wires domains, plugins and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.domain.system.controllers import SystemController
from api.domain.system.services import app_version
from engine.errors import ConfigError
from engine.io.cache import async_client, validate_redis_url
from engine.io.db import async_pool, validate_database_url
from engine.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("regimelab.api")


def _lifespan(
    settings: Settings, database_url: str, redis_url: str
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Open the Postgres pool and Redis client on startup; close them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await async_pool(
            database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=settings.connect_timeout,
            wait=False,
        )
        cache = async_client(redis_url, timeout=settings.connect_timeout)
        app.state.db_pool = pool
        app.state.cache = cache
        try:
            yield
        finally:
            await cache.aclose()
            await pool.close()

    return lifespan


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    """RFC 9457 body for unexpected errors: logged in full, shown without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": HTTP_500_INTERNAL_SERVER_ERROR,
            "detail": "The server hit an unexpected error; it has been logged.",
        },
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type="application/problem+json",
    )


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> Litestar:
    """The API, connected to the given URLs (default: `DATABASE_URL` and `REDIS_URL`)."""
    settings = settings or get_settings()
    database_url = database_url or settings.database_url
    redis_url = redis_url or settings.redis_url
    if not database_url or not redis_url:
        raise ConfigError(
            "the API needs DATABASE_URL and REDIS_URL; use `regimelab up` for embedded servers"
        )
    validate_database_url(database_url)
    validate_redis_url(redis_url)
    return Litestar(
        route_handlers=[SystemController],
        lifespan=[_lifespan(settings, database_url, redis_url)],
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=True))],
        exception_handlers={Exception: _internal_error},
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)),
        openapi_config=OpenAPIConfig(
            title="RegimeLab API",
            version=app_version(),
            description="Market regimes, strategies, alerts and analogs.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
    )
