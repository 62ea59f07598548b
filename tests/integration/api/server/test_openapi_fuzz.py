"""Schemathesis over every operation of `/schema/openapi.json`, with an admin key.

One API server and one database serve the whole module (seeded with real bars, a regime
run and a backtest so list routes return real rows to validate). Checks: no 5xx, every
response matching the schema declared for its status and media type. Examples per
operation are bounded so the run stays within a couple of minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from api.server.app import create_app
from engine.ingest.service import build_request, run_ingest
from engine.io.api_keys import create_api_key, server_secret
from engine.settings import Settings, load_settings
from tests.conftest import _fresh_database
from tests.integration.api.conftest import _running

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 10


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    admin_key: str


def _wait_for_job(url: str, key: str, job_id: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
        if body["status"] in {"succeeded", "failed"}:
            assert body["status"] == "succeeded", body
            return
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def served(
    pg_server_url: str,
    template_database: str,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    for database_url in _fresh_database(pg_server_url, template_database):
        config: Settings = load_settings(
            env_file=folder / "absent.env",
            environ={
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_server_url,
                "REGIMELAB_CACHE_PREFIX": f"regimelab-fuzz-{folder.name}",
                "REGIMELAB_STATE_DIR": str(folder / "state"),
                "REGIMELAB_SECRET_KEY": "fuzz-secret-0123456789",
                "REGIMELAB_SCHEDULER": "false",
                "REGIMELAB_RATE_LIMIT": "0",
                "REGIMELAB_LOG_FORMAT": "text",
                "REGIMELAB_LOG_LEVEL": "WARNING",
            },
        )
        run_ingest(
            config,
            build_request("synthetic", "2", options={"n_days": 400}),
            database_url=database_url,
            redis_url=redis_server_url,
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            _, admin = create_api_key(conn, "fuzz-admin", "admin", server_secret(config))
        with _running(create_app(config)) as url:
            headers = {"X-API-Key": admin}
            symbols = [
                i["symbol"]
                for i in httpx.get(f"{url}/api/v1/instruments", headers=headers).json()["items"]
            ]
            fit = httpx.post(
                f"{url}/api/v1/regimes/fits",
                headers=headers,
                json={"model": "hmm", "symbols": symbols, "n_states": 2},
            )
            assert fit.status_code == 202, fit.text
            _wait_for_job(url, admin, fit.json()["job_id"])
            backtest = httpx.post(
                f"{url}/api/v1/backtests",
                headers=headers,
                json={"spec": {"strategy": "sma_crossover", "symbols": symbols}},
            )
            assert backtest.status_code == 202, backtest.text
            _wait_for_job(url, admin, backtest.json()["job_id"])
            yield Served(url, admin)


def _schemathesis(served: Served, tmp_path: Path, max_examples: int, phases: str) -> str:
    """Schemathesis's own runner (its pytest plugin does not support this pytest)."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{served.url}/schema/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--header",
        f"Authorization: Bearer {served.admin_key}",
        "--max-examples",
        str(max_examples),
        "--phases",
        phases,
        "--seed",
        "20261126",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=1200, cwd=tmp_path, check=False
    )

    print(run.stdout[-4000:])  # the summary: operations tested, cases generated
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]
    return run.stdout


def test_every_operation_conforms(served: Served, tmp_path: Path) -> None:
    _schemathesis(served, tmp_path, MAX_EXAMPLES, "examples,coverage,fuzzing")


@pytest.mark.slow
def test_a_larger_budget_and_stateful_sequences_conform(served: Served, tmp_path: Path) -> None:
    """Four times the examples, then stateful sequences (a created resource's id fed into
    the operations that read, change and delete it, where Schemathesis can link them)."""
    _schemathesis(served, tmp_path, 4 * MAX_EXAMPLES, "fuzzing,stateful")
