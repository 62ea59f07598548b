"""Alert routes: rules (CRUD, test sends, backfills), evaluation (a job), events, live feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

import redis.asyncio
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import BodyKwarg, JSONBody, Parameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler

from api.domain.alerts import services
from api.domain.alerts.schemas import (
    SYMBOL_PATTERN,
    AlertEvent,
    AlertEventDetail,
    AlertRule,
    AlertRuleSpec,
    BackfillRequest,
    BackfillResult,
    EvaluateParams,
    RuleTestResult,
    Severity,
)
from api.domain.alerts.stream import EVENT_STREAM, event_stream
from api.domain.market.schemas import TIME_PATTERN
from api.lib.auth import requires
from api.lib.deps import Database
from api.lib.jobs import JobAccepted, JobEnv, JobRunner
from api.lib.pagination import Page, Pagination
from api.lib.problems import PROBLEM_JSON, Problem, http_problem
from engine.settings import Settings

__all__ = ["ROUTES", "AlertEventController", "AlertRuleController"]

_MAX_RULE_ID: Final = 2**31 - 1
_MAX_EVENT_ID: Final = 2**53 - 1
_CONFLICT: Final = {
    409: ResponseSpec(
        Problem,
        description="an alert rule of that name exists",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}
_NOT_ACCEPTABLE: Final = {
    406: ResponseSpec(
        Problem,
        description="the request did not ask for text/event-stream (Accept)",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}

Db = NamedDependency[Database]
Paging = NamedDependency[Pagination]
Config = NamedDependency[Settings]
Live = NamedDependency[redis.asyncio.Redis]
Env = NamedDependency[JobEnv]
RuleId = Annotated[int, Parameter(ge=1, le=_MAX_RULE_ID, description="alert rule id")]
EventId = Annotated[int, Parameter(ge=1, le=_MAX_EVENT_ID, description="alert event id")]
RuleFilter = Annotated[
    int | None, Parameter(ge=1, le=_MAX_RULE_ID, description="only this rule's events")
]
SeverityFilter = Annotated[Severity | None, Parameter(description="only this severity")]
RuleBody = JSONBody[AlertRuleSpec]
EvaluateBody = Annotated[
    EvaluateParams | None,
    BodyKwarg(
        media_type=RequestEncodingType.JSON,
        description="which rules (default: every enabled rule); the body may be left out",
    ),
]


def _redis(state: State) -> redis.asyncio.Redis:
    live: redis.asyncio.Redis = state.cache
    return live


def _job_env(state: State) -> JobEnv:
    env: JobEnv = state.job_runner.env
    return env


def _rule_body_problem(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Problem]:
    """Body errors named as the engine names them: a missing or unknown field is the
    field itself ("condition.feature"), not the object that lacks or has it."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    if not (exc.detail or "").startswith("Validation failed for"):
        return http_problem(request, exc)  # ours: fields named already
    for item in extra:
        if isinstance(item, dict) and item.get("source") == "body":
            item["key"] = services.field_of(item.get("key"), str(item.get("message", "")))
    return http_problem(request, exc)


async def _json_body(request: Request[Any, Any, Any]) -> object:
    try:
        return await request.json()
    except SerializationException:
        return None  # not JSON: the typed body answers the 400


async def _rule_body(request: Request[Any, Any, Any]) -> None:
    """Before a rule body is decoded: the engine's parsing, errors named as it names them."""
    services.canonical_rule(await _json_body(request))


async def _backfill_body(request: Request[Any, Any, Any]) -> None:
    """Before a backfill body is decoded: its `rule` parsed as `_rule_body` parses rules."""
    data = await _json_body(request)
    if isinstance(data, dict) and data.get("rule") is not None:
        services.canonical_rule(data["rule"], "rule.")


@dataclass
class _OptionalBody(Operation):
    """An operation whose JSON body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class AlertRuleController(Controller):
    """Declarative alert rules: stored, validated, tried on history, tested on channels."""

    path = "/alerts"
    tags = ["alerts"]  # noqa: RUF012  (Litestar declares it as a plain attribute)
    dependencies = {"job_env": Provide(_job_env, sync_to_thread=False)}  # noqa: RUF012
    exception_handlers = {ValidationException: _rule_body_problem}  # noqa: RUF012

    @get("/rules", operation_id="listAlertRules", summary="Alert rules by name")
    async def list_rules(
        self,
        database: Db,
        page: Paging,
        enabled: Annotated[bool | None, Parameter(description="only enabled (or disabled)")] = None,
    ) -> Page[AlertRule]:
        """Stored rules; webhook secrets read back as `********`."""
        return await services.list_rules(database, page, enabled)

    @post(
        "/rules",
        operation_id="createAlertRule",
        summary="Store a new alert rule",
        guards=[requires("write")],
        responses=_CONFLICT,
        before_request=_rule_body,
    )
    async def create_rule(self, data: RuleBody, database: Db, settings: Config) -> AlertRule:
        """201 with the stored rule; 400 names the invalid field; 409 if the name is taken."""
        return await services.create_rule(database, settings, data)

    @get("/rules/{rule_id:int}", operation_id="getAlertRule", summary="One alert rule")
    async def get_rule(self, rule_id: RuleId, database: Db) -> AlertRule:
        """The stored rule; 404 if there is none."""
        return await services.get_rule(database, rule_id)

    @put(
        "/rules/{rule_id:int}",
        operation_id="replaceAlertRule",
        summary="Replace an alert rule",
        guards=[requires("write")],
        responses=_CONFLICT,
        before_request=_rule_body,
    )
    async def replace_rule(
        self, rule_id: RuleId, data: RuleBody, database: Db, settings: Config
    ) -> AlertRule:
        """The whole rule is replaced (a `********` secret keeps the stored one); it then
        judges the bars stored from now on."""
        return await services.replace_rule(database, settings, rule_id, data)

    @delete(
        "/rules/{rule_id:int}",
        operation_id="deleteAlertRule",
        summary="Delete an alert rule with its events",
        guards=[requires("write")],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_rule(self, rule_id: RuleId, database: Db) -> None:
        """204; its events and their deliveries go with it."""
        await services.delete_rule(database, rule_id)

    @post(
        "/rules/{rule_id:int}/test",
        operation_id="testAlertRule",
        summary="Send a test notification through a rule's channels",
        guards=[requires("write")],
        status_code=HTTP_200_OK,
    )
    async def test_rule(self, rule_id: RuleId, database: Db, job_env: Env) -> RuleTestResult:
        """A message marked [TEST] goes out on every channel now; the outcome per channel."""
        return await services.test_rule(database, job_env, rule_id)

    @post(
        "/backfill",
        operation_id="backfillAlertRule",
        summary="When would a rule have fired over history?",
        status_code=HTTP_200_OK,
        before_request=_backfill_body,
    )
    async def backfill(
        self, data: JSONBody[BackfillRequest], database: Db, settings: Config
    ) -> BackfillResult:
        """The firing dates of an unsaved `rule` or a stored `rule_id` over at most 30 years
        (its warm-up read from before `start`), with their messages and a count."""
        return await services.backfill_rule(database, settings, data)

    @post(
        "/evaluate",
        operation_id="evaluateAlerts",
        summary="Evaluate alert rules on the latest bars now (a job)",
        guards=[requires("write")],
        status_code=HTTP_202_ACCEPTED,
        operation_class=_OptionalBody,
    )
    async def evaluate(
        self, database: Db, jobs: NamedDependency[JobRunner], data: EvaluateBody = None
    ) -> Response[JobAccepted]:
        """202 with an `alerts.evaluate` job to poll; new events are recorded and sent."""
        return await services.submit_evaluation(database, jobs, data)


class AlertEventController(Controller):
    """What rules fired: recorded events, their deliveries, and the live feed."""

    path = "/alerts"
    tags = ["alerts"]  # noqa: RUF012  (Litestar declares it as a plain attribute)
    dependencies = {"live": Provide(_redis, sync_to_thread=False)}  # noqa: RUF012

    @get("/events", operation_id="listAlertEvents", summary="Alert events, newest bar first")
    async def list_events(
        self,
        *,
        database: Db,
        page: Paging,
        rule_id: RuleFilter = None,
        symbol: Annotated[
            str | None, Parameter(pattern=SYMBOL_PATTERN, description="only this symbol")
        ] = None,
        severity: SeverityFilter = None,
        since: Annotated[
            str | None,
            Parameter(
                pattern=TIME_PATTERN,
                description="only bars from this day or time (YYYY-MM-DD or ISO 8601; UTC "
                "if no offset)",
            ),
        ] = None,
    ) -> Page[AlertEvent]:
        """Recorded firings, optionally of one rule, symbol or severity."""
        return await services.list_events(
            database, page, rule_id=rule_id, symbol=symbol, severity=severity, since=since
        )

    @get(
        "/events/{event_id:int}",
        operation_id="getAlertEvent",
        summary="One alert event with its deliveries",
    )
    async def get_event(self, event_id: EventId, database: Db) -> AlertEventDetail:
        """The event and the state of each channel's delivery; 404 if there is none."""
        return await services.get_event(database, event_id)

    @get(
        "/stream",
        operation_id="streamAlertEvents",
        summary="Live alert events (Server-Sent Events)",
        media_type=EVENT_STREAM,
        responses=_NOT_ACCEPTABLE,
    )
    async def stream(
        self,
        *,
        request: Request[Any, Any, Any],
        live: Live,
        settings: Config,
        rule_id: RuleFilter = None,
        severity: SeverityFilter = None,
    ) -> ServerSentEvent:
        """`text/event-stream` for clients that send `Accept: text/event-stream` (else 406):
        `event: alert` with each new event as JSON (`id`: the event id) the moment an
        evaluation records it; `: heartbeat` comments every 15 s."""
        accept = request.headers.get("accept")
        return event_stream(live, settings.cache_prefix, accept, severity=severity, rule_id=rule_id)


ROUTES: list[ControllerRouterHandler] = [AlertRuleController, AlertEventController]
