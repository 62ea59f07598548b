"""RFC 9457 problem details written straight to ASGI (for middleware, before any route)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import msgspec
from litestar.types import Send

__all__ = ["PROBLEM_JSON", "send_problem"]

PROBLEM_JSON = "application/problem+json"


async def send_problem(
    send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    """Answer with a problem-details body: type, title, status, detail."""
    body = msgspec.json.encode(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
    )
    raw_headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
