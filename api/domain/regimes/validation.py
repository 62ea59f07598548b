"""Checks of regime inputs that answer 400 problem details naming the input and the choices."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Final

from litestar.exceptions import ValidationException

from api.domain.regimes.schemas import SYMBOL_PATTERN
from engine.regimes.registry import MODEL_CLASSES

__all__ = [
    "MAX_SYMBOLS",
    "check_model",
    "check_window",
    "day_end",
    "day_start",
    "invalid",
    "split_symbols",
]

MAX_SYMBOLS: Final = 200
"""Most symbols one comma-separated query parameter may name."""
_SYMBOL: Final = re.compile(SYMBOL_PATTERN)


def invalid(key: str, message: str) -> ValidationException:
    """A 400 problem naming the bad input `key` and what is wrong with it."""
    return ValidationException(detail=message, extra=[{"key": key, "message": message}])


def check_model(model: str, key: str = "model") -> str:
    """`model` if it names a regime model, else a 400 listing the models."""
    if model not in MODEL_CLASSES:
        raise invalid(
            key, f"unknown regime model {model!r}; choose one of {', '.join(MODEL_CLASSES)}"
        )
    return model


def split_symbols(text: str, key: str = "symbols") -> list[str]:
    """Comma-separated symbols, stripped and de-duplicated (order kept); 400 if malformed."""
    symbols = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not symbols:
        raise invalid(key, f"{key} needs at least one symbol")
    if len(symbols) > MAX_SYMBOLS:
        raise invalid(key, f"at most {MAX_SYMBOLS} symbols per request")
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise invalid(key, f"not a symbol: {bad[0][:40]!r} (letters, digits and ._^=/:-)")
    return symbols


def day_start(day: date) -> datetime:
    """Midnight UTC opening `day`."""
    return datetime.combine(day, time.min, UTC)


def day_end(day: date) -> datetime:
    """The last microsecond of `day` (UTC), so a window's last day is included."""
    return datetime.combine(day, time.max, UTC)


def check_window(start: date | None, end: date | None) -> None:
    """A 400 unless `start` <= `end` (when both are given)."""
    if start is not None and end is not None and start > end:
        raise invalid("start", f"start ({start}) is after end ({end})")
