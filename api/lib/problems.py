"""RFC 9457 problem details: every 4xx and 5xx body the API sends has this shape.

`type` (about:blank: the status says it all), `title` (the status phrase), `status`,
`detail` (what went wrong with this request) and, for validation failures, `errors`: one
entry per offending field with where it came from (body, query, path, header).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.types import Send

__all__ = [
    "PROBLEM_JSON",
    "FieldError",
    "Problem",
    "document_problems",
    "http_problem",
    "problem",
    "send_problem",
]

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):  # absent, not null
    """One invalid input."""

    field: str | None = None
    source: str | None = None
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem-details body (`errors` only on validation failures)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(status: int, detail: str, errors: list[FieldError] | None = None) -> Problem:
    """The problem body for `status` with this request's `detail`."""
    return Problem(
        title=_phrase(status),
        status=status,
        detail=detail,
        errors=msgspec.UNSET if errors is None else errors,
    )


def _source(value: object) -> str | None:
    """'query', 'body', ... (Litestar hands an enum for parameters, a string for bodies)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _field_errors(extra: Any) -> list[FieldError] | None:
    if not isinstance(extra, list) or not extra:
        return None
    out = []
    for item in extra:
        if isinstance(item, Mapping):
            out.append(
                FieldError(
                    field=None if item.get("key") is None else str(item.get("key")),
                    source=_source(item.get("source")),
                    message=str(item.get("message", "invalid")),
                )
            )
    return out or None


def http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Litestar's HTTP exceptions (validation, 404, 405, guards, ...) as problem details."""
    status = exc.status_code
    detail = exc.detail or _phrase(status)
    if status == 400 and detail.startswith("Validation failed for"):
        detail = f"invalid input for {request.method} {request.url.path}"
    body = problem(status, detail, _field_errors(exc.extra))
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=exc.headers)


async def send_problem(
    send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    """Answer with a problem-details body: type, title, status, detail."""
    body = msgspec.json.encode(problem(status, detail))
    raw_headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# Problems any /api/v1 operation may answer, beside the ones Litestar infers.
_API_PROBLEMS: Final = {
    "400": "invalid input (see `errors`)",
    "401": "no API key, or an unknown or revoked one",
    "403": "the API key lacks the scope this operation needs",
    "404": "the resource does not exist",
    "413": "the request body is too large",
    "429": "over the API key's rate limit (see Retry-After)",
    "503": "the database is unavailable (see Retry-After)",
}


def _problem_schemas() -> dict[str, Schema]:
    text = Schema(type=OpenAPIType.STRING)
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        title="FieldError",
        properties={"field": text, "source": text, "message": text},
        required=["message"],
    )
    problem_schema = Schema(
        type=OpenAPIType.OBJECT,
        title="Problem",
        description="RFC 9457 problem details",
        properties={
            "type": text,
            "title": text,
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": text,
            "errors": Schema(
                type=OpenAPIType.ARRAY, items=Reference("#/components/schemas/FieldError")
            ),
        },
        required=["title", "status", "detail"],
    )
    return {"Problem": problem_schema, "FieldError": field_error}


def _problem_response(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_JSON: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
    )


def document_problems(app: Litestar) -> None:
    """Declare every error response in the OpenAPI document as a problem-details body."""
    spec = app.openapi_schema
    assert spec.components is not None
    spec.components.schemas = {**(spec.components.schemas or {}), **_problem_schemas()}
    for path, item in (spec.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            responses = dict(operation.responses or {})
            for status, response in list(responses.items()):
                if status.startswith(("4", "5")) and isinstance(response, OpenAPIResponse):
                    responses[status] = _problem_response(response.description)
            if path.startswith("/api/"):
                for status, description in _API_PROBLEMS.items():
                    responses.setdefault(status, _problem_response(description))
            responses.setdefault("500", _problem_response("unexpected server error (logged)"))
            operation.responses = responses
