"""Ingest routes: queue loads, follow ingest runs, providers and their cache TTLs."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler

from api.domain.ingest.schemas import (
    IngestCreate,
    IngestRun,
    ProviderInfo,
    ProviderTtl,
    ProviderTtlUpdate,
    RunStatus,
)
from api.domain.ingest.services import (
    forget_ttl,
    ingest_run,
    ingest_run_page,
    provider_page,
    start_ingest,
    store_ttl,
    ttl_page,
)
from api.domain.market.schemas import CODE_PATTERN
from api.lib.auth import api_key_of, requires
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobRunner, accepted
from api.lib.pagination import Page, Pagination
from engine.settings import Settings

__all__ = ["ROUTES", "IngestController", "ProviderController"]

ProviderPath = Annotated[str, PathParameter(max_length=64, description="provider name, e.g. yahoo")]
DatasetPath = Annotated[str, PathParameter(max_length=64, description="dataset, e.g. bars")]


class IngestController(Controller):
    """Loads of market data: queued as jobs, recorded as ingest runs."""

    path = "/ingest"
    tags = ["ingest"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @post(
        "/",
        operation_id="startIngest",
        summary="Queue an ingest job (checked up front)",
        status_code=HTTP_202_ACCEPTED,
        guards=[requires("write")],
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[IngestCreate],
        jobs: NamedDependency[JobRunner],
    ) -> Response[JobAccepted]:
        """202 with the job id to poll; 400 names the choices for an unknown provider,
        interval or symbol. The `files` provider reads server paths: admin keys only."""
        return accepted(await start_ingest(jobs, data, api_key_of(request)), "ingest")

    @get(
        "/runs",
        operation_id="listIngestRuns",
        summary="Ingest runs, newest first",
    )
    async def list_runs(
        self,
        database: NamedDependency[Database],
        page: NamedDependency[Pagination],
        provider: Annotated[
            str | None,
            QueryParameter(
                max_length=64, pattern=CODE_PATTERN, description="only this provider's runs"
            ),
        ] = None,
        status: Annotated[
            RunStatus | None, QueryParameter(description="only runs in this state")
        ] = None,
    ) -> Page[IngestRun]:
        """What each run asked for, loaded and rejected (quality counts), and how it ended."""
        return await ingest_run_page(database, page, provider or None, status)

    @get(
        "/runs/{run_id:int}",
        operation_id="getIngestRun",
        summary="One ingest run",
    )
    async def get_run(
        self,
        database: NamedDependency[Database],
        run_id: Annotated[int, PathParameter(ge=1, le=2**53 - 1)],
    ) -> IngestRun:
        """The run; 404 if there is none."""
        return await ingest_run(database, run_id)


class ProviderController(Controller):
    """Market-data providers and the cache TTL ingest uses for each dataset."""

    path = "/providers"
    tags = ["ingest"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get(
        "/",
        operation_id="listProviders",
        summary="Providers, their datasets and credential status",
    )
    async def list_providers(
        self, settings: NamedDependency[Settings], page: NamedDependency[Pagination]
    ) -> Page[ProviderInfo]:
        """Every provider with its datasets, intervals, default TTLs and whether the
        credentials it needs are configured (values are never shown)."""
        return await provider_page(settings, page)

    @get(
        "/ttls",
        operation_id="listProviderTtls",
        summary="Effective cache TTL per provider dataset",
    )
    async def list_ttls(
        self,
        database: NamedDependency[Database],
        settings: NamedDependency[Settings],
        page: NamedDependency[Pagination],
    ) -> Page[ProviderTtl]:
        """The TTL ingest uses and its source: the table (set here), settings or default."""
        return await ttl_page(database, settings, page)

    @put(
        "/{provider:str}/ttls/{dataset:str}",
        operation_id="setProviderTtl",
        summary="Set the cache TTL of a provider dataset",
        guards=[requires("admin")],
    )
    async def set_ttl(
        self,
        database: NamedDependency[Database],
        settings: NamedDependency[Settings],
        provider: ProviderPath,
        dataset: DatasetPath,
        data: JSONBody[ProviderTtlUpdate],
    ) -> ProviderTtl:
        """Stored in the table, it wins over settings and the default from the next load."""
        return await store_ttl(database, settings, provider, dataset, data.ttl_seconds)

    @delete(
        "/{provider:str}/ttls/{dataset:str}",
        operation_id="deleteProviderTtl",
        summary="Drop a provider dataset's TTL (back to settings or the default)",
        guards=[requires("admin")],
    )
    async def delete_ttl(
        self, database: NamedDependency[Database], provider: ProviderPath, dataset: DatasetPath
    ) -> None:
        """204 whether or not a TTL was stored; 404 for an unknown provider or dataset."""
        await forget_ttl(database, provider, dataset)


ROUTES: list[ControllerRouterHandler] = [IngestController, ProviderController]
