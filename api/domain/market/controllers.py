"""Market routes: stored instruments, their bars (JSON, CSV, Parquet, Arrow) and features."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.openapi.spec.media_type import OpenAPIMediaType
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.types import ControllerRouterHandler

from api.domain.market.schemas import (
    BAR_MEDIA_TYPES,
    CODE_PATTERN,
    SYMBOL_PATTERN,
    TIME_PATTERN,
    BarFormat,
    BarSeries,
    FeatureSeries,
    Instrument,
    InstrumentCreate,
)
from api.domain.market.services import (
    BarsRequest,
    FeaturesRequest,
    add_instrument,
    bar_format,
    bars_body,
    chosen_features,
    instrument,
    instrument_page,
    symbol_features,
    time_range,
)
from api.lib.auth import requires
from api.lib.cache import ResponseCache
from api.lib.deps import Database
from api.lib.pagination import Page, Pagination
from api.lib.problems import PROBLEM_JSON, Problem
from engine.features.names import FEATURE_NAMES
from engine.providers.standard.bars import Interval

__all__ = ["ROUTES", "InstrumentController"]

SymbolPath = Annotated[
    str, PathParameter(pattern=SYMBOL_PATTERN, description="instrument symbol, e.g. SPX")
]
TimeQuery = Annotated[
    str | None,
    QueryParameter(
        pattern=TIME_PATTERN,
        description="YYYY-MM-DD or an ISO 8601 datetime, inclusive (UTC if no offset)",
    ),
]
IntervalQuery = Annotated[Interval, QueryParameter(description="bar interval")]

_FILE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIXES: Final[dict[BarFormat, str]] = {"csv": "csv", "parquet": "parquet", "arrow": "arrow"}


@dataclass
class _BarsOperation(Operation):
    """The bars operation: its 200 also comes as CSV, Parquet and Arrow IPC."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if not isinstance(ok, OpenAPIResponse) or ok.content is None:
            return
        ok.content["text/csv"] = OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, description="CSV with a header row")
        )
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        ok.content[BAR_MEDIA_TYPES["parquet"]] = OpenAPIMediaType(schema=binary)
        ok.content[BAR_MEDIA_TYPES["arrow"]] = OpenAPIMediaType(schema=binary)


class InstrumentController(Controller):
    """Stored instruments and their market data."""

    path = "/instruments"
    tags = ["market"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @get(
        "/",
        operation_id="listInstruments",
        summary="Stored instruments, with the bars stored for each",
    )
    async def list_instruments(
        self,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        page: NamedDependency[Pagination],
        q: Annotated[
            str | None,
            QueryParameter(
                max_length=100,
                pattern=r"^[^\x00-\x1f\x7f]*$",
                description="text to find in the symbol or name (case-insensitive)",
            ),
        ] = None,
        asset_class: Annotated[
            str | None,
            QueryParameter(
                max_length=32, pattern=CODE_PATTERN, description="only this asset class, e.g. index"
            ),
        ] = None,
    ) -> Page[Instrument]:
        """Instruments ordered by symbol; `coverage` lists stored bars per interval."""
        return await instrument_page(database, cache, page, q or None, asset_class or None)

    @post(
        "/",
        operation_id="createInstrument",
        summary="Describe a new instrument before its first load",
        guards=[requires("write")],
        responses={
            409: ResponseSpec(
                Problem,
                description="the symbol is already stored",
                media_type=PROBLEM_JSON,
                generate_examples=False,
            )
        },
    )
    async def create_instrument(
        self,
        data: JSONBody[InstrumentCreate],
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
    ) -> Instrument:
        """201 with the stored instrument; 409 if the symbol is already stored."""
        return await add_instrument(database, cache, data)

    @get(
        "/{symbol:str}",
        operation_id="getInstrument",
        summary="One stored instrument",
    )
    async def get_instrument(
        self,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        symbol: SymbolPath,
    ) -> Instrument:
        """The instrument and the bars stored for it; 404 if it is not stored."""
        return await instrument(database, cache, symbol)

    @get(
        "/{symbol:str}/bars",
        operation_id="getInstrumentBars",
        summary="Bars of one instrument as JSON, CSV, Parquet or Arrow IPC",
        responses={200: ResponseSpec(BarSeries, description="The bars", generate_examples=False)},
        operation_class=_BarsOperation,
    )
    async def get_bars(  # noqa: PLR0917  (query parameters)
        self,
        request: Request[Any, Any, Any],
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        symbol: SymbolPath,
        start: TimeQuery = None,
        end: TimeQuery = None,
        interval: IntervalQuery = "1d",
        fmt: Annotated[
            BarFormat | None,
            QueryParameter(
                name="format",
                description="json, csv, parquet or arrow; wins over the Accept header",
            ),
        ] = None,
    ) -> Response[bytes]:
        """Bars in [start, end], oldest first. The format comes from `format=` or `Accept`
        (application/json, text/csv, application/vnd.apache.parquet,
        application/vnd.apache.arrow.file); files hold the canonical bar frame."""
        query = BarsRequest(
            symbol, *time_range(start, end), interval, bar_format(fmt, request.accept)
        )
        body, outcome = await bars_body(database, cache, query)
        return _bars_response(query, body, outcome.value)

    @get(
        "/{symbol:str}/features",
        operation_id="getInstrumentFeatures",
        summary="Features of one instrument (returns, volatility, trend, drawdown)",
    )
    async def get_features(  # noqa: PLR0917  (query parameters)
        self,
        database: NamedDependency[Database],
        cache: NamedDependency[ResponseCache],
        symbol: SymbolPath,
        start: TimeQuery = None,
        end: TimeQuery = None,
        interval: IntervalQuery = "1d",
        features: Annotated[
            str | None,
            QueryParameter(
                max_length=1000,
                description=f"comma-separated feature names (default: a standard set); "
                f"available: {', '.join(FEATURE_NAMES)}",
            ),
        ] = None,
    ) -> FeatureSeries:
        """Features in [start, end], warmed up on the bars stored before `start`."""
        query = FeaturesRequest(
            symbol, *time_range(start, end), interval, chosen_features(features)
        )
        return await symbol_features(database, cache, query)


def _bars_response(query: BarsRequest, body: bytes, cache_outcome: str) -> Response[bytes]:
    headers = {"X-Cache": cache_outcome}
    if query.format != "json":
        name = _FILE_NAME.sub("_", f"{query.symbol}_{query.interval}")
        headers["Content-Disposition"] = f'attachment; filename="{name}.{_SUFFIXES[query.format]}"'
    return Response(body, media_type=query.media_type, headers=headers)


ROUTES: list[ControllerRouterHandler] = [InstrumentController]
