"""The marimo notebooks: `marimo check` passes on every file in notebooks/, and every
notebook runs top to bottom on the sample data (one `marimo export html` each, which runs
every cell) with no cell error, its charts rendered as Vega-Lite specs and its main
outputs present.

The exports share one database seeded like `regimelab up` seeds the embedded one (the
sample SPX and IXIC series and a stored HMM run) and reach it the way a user's notebook
does: through DATABASE_URL and REDIS_URL in the environment. They run two at a time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from engine.ingest.service import build_request, run_ingest
from engine.io.db import with_database
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import RegimeSpec
from engine.settings import PROJECT_ROOT, load_settings

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.py"))
"""Every marimo file; names starting with _ are modules of shared functions, not apps."""
APPS = [path for path in NOTEBOOKS if not path.name.startswith("_")]
MARIMO = str(Path(sys.executable).with_name("marimo"))

# The headings of each notebook's main outputs (a notebook added later, e.g. analogs.py,
# is still checked for errors and charts).
MAIN_OUTPUTS: dict[str, tuple[str, ...]] = {
    "regime_explorer.py": (
        "with filtered regime bands",
        "filtered (causal) vs smoothed",
        "Transition matrix and expected durations",
        "Per-regime return, volatility and durations",
        "Current regime and forecast",
    ),
    "strategy_lab.py": (
        "vs benchmark (growth of 1)",
        "drawdown below the running peak",
        "Metrics overall",
        "Metrics per regime",
        "Parameter sweep",
        "Walk-forward out of sample",
        "Export the spec",
        "/api/v1/strategies",
    ),
    "data_quality.py": (
        "Coverage against the exchange calendar",
        "Missing sessions per symbol",
        "Quality flags per symbol",
        "Ingest runs",
        "Cache hit rates",
    ),
    "analogs.py": (
        "Nearest earlier market states",
        "over its analogs' paths, and what followed",
        "Distribution of forward returns",
    ),
    "alert_designer.py": (
        "is valid",
        "Backfill: ",
        "would have fired",
        "Firings per symbol",
        "Save the rule",
        "/api/v1/alerts/rules",
    ),
}
MIN_CHARTS: dict[str, int] = {
    "regime_explorer.py": 4,
    "strategy_lab.py": 4,
    "data_quality.py": 2,
    "alert_designer.py": 2,
    "analogs.py": 2,
}
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/"
"""Each chart's spec names its schema once ("$schema": "https://vega.github.io/...")."""
SCHEMA_KEY = re.compile(r"(\$|#36;)schema")
"""`$schema`, whose `$` is escaped (`&#36;`, `\u0026#36;`) in outputs nested in layouts."""


def test_every_app_has_its_outputs_listed() -> None:
    """Known notebooks keep their output checks; the folder has at least the four apps."""
    names = {path.name for path in APPS}
    assert set(MAIN_OUTPUTS) <= names


@pytest.fixture(scope="module")
def check_report() -> dict[str, object]:
    """`marimo check --strict` of every file at once (one interpreter start, not one per
    file), as JSON: its `issues` name their file."""
    result = subprocess.run(
        [MARIMO, "check", "--strict", "--format", "json", *map(str, NOTEBOOKS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, object] = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_marimo_check_passes(notebook: Path, check_report: dict[str, Any]) -> None:
    issues = [
        issue
        for issue in check_report["issues"]
        if Path(issue.get("filename", "")).name == notebook.name
    ]
    assert not issues, json.dumps(issues, indent=2)


def test_marimo_check_exits_cleanly(check_report: dict[str, Any]) -> None:
    assert check_report["returncode"] == 0, check_report
    assert check_report["summary"]["total_files"] == len(NOTEBOOKS)


@pytest.fixture(scope="module")
def notebook_env(
    pg_server_url: str, template_database: str, redis_server_url: str, tmp_path_factory
) -> Iterator[dict[str, str]]:
    """Environment for notebook subprocesses: a database of their own with the sample
    series and a stored HMM run, a Redis key prefix of their own, no .env and no API key."""
    name = f"test_nb_{uuid.uuid4().hex[:12]}"
    admin_url = with_database(pg_server_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    database_url = with_database(pg_server_url, name)
    prefix = f"regimelab-test-{uuid.uuid4().hex[:12]}"
    folder = tmp_path_factory.mktemp("notebooks")
    variables = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server_url,
        "REGIMELAB_CACHE_PREFIX": prefix,
        "REGIMELAB_STATE_DIR": str(folder / "state"),
        "REGIMELAB_ENV_FILE": str(folder / "absent.env"),
    }
    settings = load_settings(env_file=folder / "absent.env", environ=variables)
    run_ingest(
        settings,
        build_request("sample", "SPX,IXIC"),
        database_url=database_url,
        redis_url=redis_server_url,
    )
    run_regime_fit(database_url, RegimeSpec(model="hmm", n_states=3), ["SPX", "IXIC"], workers=1)
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REGIMELAB_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    try:
        yield {**environ, **variables}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        client = redis.Redis.from_url(redis_server_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@dataclass(frozen=True, slots=True)
class Export:
    returncode: int
    log: str
    html: str


def _export(notebook: Path, out: Path, env: dict[str, str]) -> Export:
    result = subprocess.run(
        [MARIMO, "export", "html", "--no-include-code", str(notebook), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    html = out.read_text() if out.is_file() else ""
    return Export(result.returncode, result.stdout + result.stderr, html)


@pytest.fixture(scope="module")
def exports(notebook_env: dict[str, str], tmp_path_factory) -> dict[str, Export]:
    """Every app exported to HTML (which runs all its cells), two at a time."""
    folder = tmp_path_factory.mktemp("exports")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            path.name: pool.submit(_export, path, folder / f"{path.stem}.html", notebook_env)
            for path in APPS
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", APPS, ids=lambda path: path.name)
def test_notebook_runs_and_exports_its_charts(notebook: Path, exports: dict[str, Export]) -> None:
    export = exports[notebook.name]
    assert export.returncode == 0, export.log[-4000:]
    assert "some cells failed" not in export.log, export.log[-4000:]
    assert '"type": "error"' not in export.html, "a cell output is an error"
    assert SCHEMA_KEY.search(export.html), "no Vega-Lite spec in the HTML"
    charts = export.html.count(VEGA_LITE_SCHEMA)
    assert charts >= MIN_CHARTS.get(notebook.name, 1), f"{charts} Vega-Lite chart(s)"
    missing = [text for text in MAIN_OUTPUTS.get(notebook.name, ()) if text not in export.html]
    assert not missing, f"main outputs missing from the HTML: {missing}"
