"""The Litestar application: `create_app()` wires domains, plugins and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from litestar import Litestar, Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler
from psycopg_pool import PoolTimeout

from api.domain.alerts.controllers import ROUTES as ALERT_ROUTES
from api.domain.analogs.controllers import ROUTES as ANALOG_ROUTES
from api.domain.backtests.controllers import ROUTES as BACKTEST_ROUTES
from api.domain.ingest.controllers import ROUTES as INGEST_ROUTES
from api.domain.jobs.controllers import ROUTES as JOB_ROUTES
from api.domain.market.controllers import ROUTES as MARKET_ROUTES
from api.domain.notes.controllers import ROUTES as NOTE_ROUTES
from api.domain.regimes.controllers import ROUTES as REGIME_ROUTES
from api.domain.system.controllers import SystemController
from api.domain.system.services import app_version
from api.lib.auth import (
    SECURITY,
    SECURITY_SCHEMES,
    ApiKeyMiddleware,
    KeyVerifier,
    RateLimiter,
    requires,
)
from api.lib.cache import ResponseCache
from api.lib.deps import DEPENDENCIES, Database
from api.lib.jobs import JobEnv, JobRunner, load_jobs
from api.lib.logs import configure_logging
from api.lib.observability import ObservabilityMiddleware
from api.lib.problems import PROBLEM_JSON, Problem, document_problems, http_problem, problem
from api.lib.scheduler import Scheduler, settings_schedules
from api.server.web import web_routes
from engine.errors import ConfigError, RegimeLabError
from engine.io.alert_delivery import run_delivery_loop
from engine.io.api_keys import server_secret
from engine.io.cache import async_client, validate_redis_url
from engine.io.db import async_pool, sync_pool, validate_database_url
from engine.settings import Settings, get_settings

__all__ = ["API_ROUTES", "create_app", "create_worker_app"]

log = logging.getLogger("regimelab.api")

API_ROUTES: list[ControllerRouterHandler] = [
    *MARKET_ROUTES,
    *INGEST_ROUTES,
    *REGIME_ROUTES,
    *BACKTEST_ROUTES,
    *ALERT_ROUTES,
    *ANALOG_ROUTES,
    *NOTE_ROUTES,
    *JOB_ROUTES,
]


async def _deliver_alerts(database_url: str, settings: Settings, stop: asyncio.Event) -> None:
    """Send due alert deliveries every second until `stop`; an error is logged, never raised
    (the outbox keeps what was not sent, and the loop carries on)."""
    while not stop.is_set():
        try:
            await run_delivery_loop(database_url, settings, stop, interval=1.0)
        except Exception:
            log.exception("alert delivery loop failed; restarting it in 5 s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)


def _lifespan(
    settings: Settings, database_url: str, redis_url: str, secret: bytes
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Open pools, Redis, the job runner and the scheduler on startup; close them on exit."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        timeout = settings.connect_timeout
        pool = await async_pool(
            database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=timeout,
            wait=False,
        )
        engine_pool = sync_pool(
            database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=timeout,
            wait=False,
        )
        try:
            cache = async_client(redis_url, timeout=timeout)
        except BaseException:
            engine_pool.close()
            await pool.close()
            raise
        runner = JobRunner(pool, JobEnv(settings, database_url, redis_url), settings.job_workers)
        state = app.state
        state.settings = settings
        state.db_pool = pool
        state.database = Database(engine_pool)
        state.cache = cache
        state.response_cache = ResponseCache(
            cache, settings.cache_prefix, settings.api_ttl_overrides
        )
        state.key_verifier = KeyVerifier(pool, secret, settings.api_key_cache_seconds)
        state.rate_limiter = RateLimiter(
            cache, settings.cache_prefix, settings.rate_limit_per_minute
        )
        state.job_runner = runner
        scheduler: Scheduler | None = None
        stop_deliveries = asyncio.Event()
        deliveries = asyncio.create_task(
            _deliver_alerts(database_url, settings, stop_deliveries), name="alert-deliveries"
        )
        try:
            with contextlib.suppress(psycopg.Error, RegimeLabError):  # housekeeping retries
                await runner.reap_orphans()  # runs of replicas that died, failed at once
            scheduler = state.scheduler = Scheduler(settings, database_url, runner, pool)
            await scheduler.start()
            yield
        finally:
            # whatever failed on the way up, nothing is left running on the way out
            stop_deliveries.set()
            await asyncio.gather(deliveries, return_exceptions=True)
            if scheduler is not None:
                await scheduler.stop()
            await runner.close()
            await cache.aclose()
            engine_pool.close()
            await pool.close()

    return lifespan


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Unexpected errors: logged in full, answered without internals (no trace, no SQL)."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        problem(500, "The server hit an unexpected error; it has been logged."),
        status_code=500,
        media_type=PROBLEM_JSON,
    )


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    """JSON nested deeper than the decoder recurses is bad input (400), not a server bug."""
    if "deserializ" not in str(exc):  # msgspec's decoder; any other recursion is a bug
        return _internal_error(request, exc)
    return Response(
        problem(400, "the JSON body is nested too deeply"),
        status_code=400,
        media_type=PROBLEM_JSON,
    )


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """503 when the database cannot be reached: a retryable state, not a bug."""
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return Response(
        problem(503, "The database is unavailable; retry shortly."),
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": "5"},
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
    settings_schedules(settings, load_jobs())  # a bad REGIMELAB_SCHEDULES fails here, at once
    ResponseCache.check_overrides(settings.api_ttl_overrides)
    secret = server_secret(settings)
    api = Router(
        path="/api/v1",
        route_handlers=API_ROUTES,
        guards=[requires("read")],
        security=SECURITY,
    )
    app = Litestar(
        route_handlers=[SystemController, api, *web_routes()],  # the dashboard, when built
        lifespan=[_lifespan(settings, database_url, redis_url, secret)],
        dependencies=DEPENDENCIES,
        middleware=[ObservabilityMiddleware(), ApiKeyMiddleware()],
        exception_handlers={
            Exception: _internal_error,
            HTTPException: http_problem,
            RecursionError: _too_deep,
            psycopg.OperationalError: _unavailable,
            PoolTimeout: _unavailable,
        },
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Content-Disposition"],
        ),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="RegimeLab API",
            version=app_version(),
            description=(
                "Market regimes, strategies, alerts and analogs. Every `/api/v1` route needs "
                "an API key (`regimelab api-keys create`), sent as `Authorization: Bearer "
                "<key>` or `X-API-Key: <key>`; errors are RFC 9457 problem details."
            ),
            path="/schema",
            components=Components(
                security_schemes={
                    name: SecurityScheme(
                        type=spec["type"],  # type: ignore[arg-type]
                        scheme=spec.get("scheme"),
                        name=spec.get("name"),
                        security_scheme_in=spec.get("in"),  # type: ignore[arg-type]
                        description=spec.get("description"),
                    )
                    for name, spec in SECURITY_SCHEMES.items()
                }
            ),
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
        logging_config=None,  # the process's logging is the CLI's (api.lib.logs), not Litestar's
    )
    document_problems(app)
    return app


def create_worker_app() -> Litestar:
    """The app of one server worker process (`serve --workers N`): logging, then the app."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
