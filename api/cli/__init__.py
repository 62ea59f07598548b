"""`regimelab`: the one command line for running, migrating and feeding RegimeLab.

Every command turns a RegimeLab error into one line on stderr and a non-zero exit code;
a traceback means a bug. Commands live in topic modules that register on one Typer app.
"""

from __future__ import annotations

from api.cli import (  # noqa: F401  (register the commands)
    alerts,
    analogs,
    api_keys,
    backtest,
    backup,
    data,
    notes,
    regimes,
    server,
)
from api.cli._app import app, main

__all__ = ["app", "main"]
