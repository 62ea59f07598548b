from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import psycopg
import pytest

from engine.errors import MigrationError
from engine.io.migrate import apply_migrations, discover_migrations, status
from engine.settings import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "prisma" / "migrations"


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of the migration folders that a test may edit."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


def _rows(url: str) -> list[tuple[str, str, bool, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT migration_name, checksum, finished_at IS NOT NULL, applied_steps_count "
            'FROM "_prisma_migrations" ORDER BY migration_name'
        ).fetchall()


def test_applies_every_folder_and_records_it_like_prisma(empty_database_url: str) -> None:
    report = apply_migrations(empty_database_url, MIGRATIONS)

    folders = sorted(p.name for p in MIGRATIONS.iterdir() if p.is_dir())
    assert report.applied == folders
    expected = [
        (
            name,
            hashlib.sha256((MIGRATIONS / name / "migration.sql").read_bytes()).hexdigest(),
            True,
            1,
        )
        for name in folders
    ]
    assert _rows(empty_database_url) == expected
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert set(status(empty_database_url, MIGRATIONS).values()) == {"applied"}


def test_second_run_applies_nothing(empty_database_url: str) -> None:
    apply_migrations(empty_database_url, MIGRATIONS)
    before = _rows(empty_database_url)

    again = apply_migrations(empty_database_url, MIGRATIONS)

    assert again.applied == []
    assert again.already_applied == [m.name for m in discover_migrations(MIGRATIONS)]
    assert _rows(empty_database_url) == before


def test_a_changed_applied_migration_is_refused(
    empty_database_url: str, migrations_copy: Path
) -> None:
    apply_migrations(empty_database_url, migrations_copy)
    first = sorted(p for p in migrations_copy.iterdir() if p.is_dir())[0] / "migration.sql"
    first.write_text(first.read_text() + "\n-- edited after being applied\n")

    with pytest.raises(MigrationError, match="was modified after it was applied"):
        apply_migrations(empty_database_url, migrations_copy)
    assert status(empty_database_url, migrations_copy)[first.parent.name] == "modified"


def test_line_ending_changes_are_not_a_modification(
    empty_database_url: str, migrations_copy: Path
) -> None:
    apply_migrations(empty_database_url, migrations_copy)
    for script in migrations_copy.glob("*/migration.sql"):
        script.write_bytes(script.read_bytes().replace(b"\n", b"\r\n"))

    assert apply_migrations(empty_database_url, migrations_copy).applied == []


def test_a_failing_migration_leaves_nothing_behind(
    empty_database_url: str, migrations_copy: Path
) -> None:
    apply_migrations(empty_database_url, migrations_copy)
    broken = migrations_copy / "29991231000000_broken"
    broken.mkdir()
    (broken / "migration.sql").write_text(
        'CREATE TABLE "half_done" (id int);\nALTER TABLE "no_such_table" ADD COLUMN x int;\n'
    )

    with pytest.raises(MigrationError, match="29991231000000_broken failed and was rolled back"):
        apply_migrations(empty_database_url, migrations_copy)

    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    assert "29991231000000_broken" not in [r[0] for r in _rows(empty_database_url)]

    (broken / "migration.sql").write_text('CREATE TABLE "half_done" (id int);\n')
    assert apply_migrations(empty_database_url, migrations_copy).applied == [
        "29991231000000_broken"
    ]


def test_missing_folder_is_a_clear_error(empty_database_url: str, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="migrations folder not found"):
        apply_migrations(empty_database_url, tmp_path / "nope")
