"""Prisma's own CLI agrees: schema.prisma validates and the migrations produce exactly it.

Runs the pinned Prisma CLI from prisma/node_modules (`npm ci` in prisma/). Without it the
tests skip locally; CI sets REGIMELAB_REQUIRE_PRISMA=1 so a missing install fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.io.db import with_database
from engine.settings import PROJECT_ROOT

PRISMA_DIR = PROJECT_ROOT / "prisma"
WRAPPER = PRISMA_DIR / "scripts" / "prisma.mjs"


@pytest.fixture(scope="module", autouse=True)
def _prisma_installed() -> None:
    if shutil.which("node") and (PRISMA_DIR / "node_modules" / "prisma").is_dir():
        return
    message = "Prisma CLI not installed: run `npm ci` in prisma/"
    if os.environ.get("REGIMELAB_REQUIRE_PRISMA") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _prisma(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        ["node", str(WRAPPER), *args],
        cwd=PRISMA_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _drift(schema: Path, migrations: Path, server_url: str) -> subprocess.CompletedProcess[str]:
    return _prisma(
        "migrate",
        "diff",
        "--from-migrations",
        str(migrations),
        "--to-schema-datamodel",
        str(schema),
        "--exit-code",
        database_url=with_database(server_url, "postgres"),
    )


def test_schema_validates() -> None:
    result = _prisma("validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_produce_exactly_the_schema(pg_server_url: str) -> None:
    result = _drift(PRISMA_DIR / "schema.prisma", PRISMA_DIR / "migrations", pg_server_url)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_schema_change_without_migration_is_drift(pg_server_url: str, tmp_path: Path) -> None:
    schema = tmp_path / "schema.prisma"
    text = (PRISMA_DIR / "schema.prisma").read_text()
    schema.write_text(re.sub(r"(\n  symbol +String +@unique\n)", r"\1  sector String?\n", text, count=1))
    assert "sector" in schema.read_text()

    result = _drift(schema, PRISMA_DIR / "migrations", pg_server_url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sector" in result.stdout
