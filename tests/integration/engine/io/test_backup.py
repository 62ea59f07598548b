"""Backups round-trip on the embedded PostgreSQL: every table's rows (pgvector columns,
enums, jsonb, arrays, timestamps) and every sequence come back equal; restores refuse a
wrong schema version, a non-empty target and a damaged backup, changing nothing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql

from engine.alerts import parse_rule, to_row
from engine.analogs.embedding import EmbeddingSpec
from engine.analogs.service import build_states
from engine.io.alerts import insert_rule, record_events
from engine.io.backup import BackupError, backup_database, read_manifest, restore_database
from engine.io.notes import create_note
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import RegimeSpec
from engine.settings import Settings
from tests.conftest import _fresh_database

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest


class FixedEmbedder:
    """Unit vectors from a seeded generator (the real model is not needed here)."""

    name = "test-embedder"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts[0]))
        vectors = rng.normal(size=(len(texts), 256)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows if r[0] != "_prisma_migrations"]


def _fingerprint(database_url: str) -> dict[str, tuple[int, str]]:
    """(rows, digest of the rows' text in a stable order) of every table, and sequences."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        found: dict[str, tuple[int, str]] = {}
        for table in _tables(conn):
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), "
                    "coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
        for (name,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        ).fetchall():
            value = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(name))
            ).fetchone()
            assert value is not None
            found[f"sequence {name}"] = (int(value[0]), str(value[1]))
        return found


def _seed(settings: Settings, ingest: Ingest) -> None:
    """Bars and true regimes, a regime run with labels, an alert rule with an event and its
    outbox, a research note with its vector, market states with theirs."""
    database_url = settings.database_url
    assert database_url is not None
    ingest("synthetic", "2", n_days=300)
    run_regime_fit(database_url, RegimeSpec(model="hmm", n_states=2), ["SYN0000"], workers=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_states(conn, None, EmbeddingSpec(window=63, regime_model=None))
        rule = parse_rule(
            {
                "name": "syn-below-90",
                "condition": {"kind": "threshold", "feature": "close", "op": "below", "value": 90},
                "symbols": ["SYN0000"],
                "channels": [
                    {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "s3"}
                ],
                "description": "quotes ' \" , and\na newline; unicode: régime ≥ 2 🙂",
            }
        )
        rule_id = insert_rule(conn, to_row(rule))
        firing = pl.DataFrame(
            {
                "rule_id": [rule_id],
                "symbol": ["SYN0000"],
                "ts": [datetime(2024, 1, 2, tzinfo=UTC)],
                "severity": ["warning"],
                "message": ["SYN0000 closed below 90"],
                "payload": ['{"close": 89.5, "nested": {"a": [1, 2]}}'],
                "dedupe_key": [f"{rule_id}:SYN0000:2024-01-02"],
            },
            schema_overrides={"ts": pl.Datetime("us", "UTC")},
        )
        record_events(conn, firing, {rule_id: list(to_row(rule)["channels"])})
        for i in range(3):
            create_note(
                conn,
                title=f"note {i}",
                body='drawdown, "quoted"\\backslash\tand tab',
                symbol="SYN0000",
                day=date(2024, 1, 2 + i),
                regime=i % 2,
                tags=["crisis", "a,b", 'q"uote'],
                embedder=FixedEmbedder(),
            )
        conn.execute("DELETE FROM research_notes WHERE title = 'note 1'")  # a gap in the ids


def test_a_backup_restores_every_row_and_sequence_into_a_fresh_database(
    settings: Settings,
    ingest: Ingest,
    pg_server_url: str,
    template_database: str,
    tmp_path: Path,
) -> None:
    assert settings.database_url is not None
    _seed(settings, ingest)
    original = _fingerprint(settings.database_url)
    assert original["market_states"][0] > 0 and original["research_notes"][0] == 2
    assert original["regime_labels"][0] > 0 and original["alert_deliveries"][0] == 1
    steps: list[tuple[int, int, str]] = []

    manifest = backup_database(
        settings.database_url, tmp_path / "backup", progress=lambda *a: steps.append(a)
    )

    assert steps[-1][0] == steps[-1][1] == len(manifest.tables)
    assert {t.name: t.rows for t in manifest.tables} == {
        name: rows for name, (rows, _) in original.items() if not name.startswith("sequence ")
    }
    assert (tmp_path / "backup" / "manifest.json").stat().st_mode & 0o077 == 0  # private
    assert (tmp_path / "backup").stat().st_mode & 0o077 == 0

    for target in _fresh_database(pg_server_url, template_database):
        restored = restore_database(target, tmp_path / "backup")
        assert restored.rows == manifest.rows
        assert _fingerprint(target) == original
        # ids continue after the restored ones (sequences came back too)
        with psycopg.connect(target, autocommit=True) as conn:
            note = create_note(conn, title="after", body="restore")
            assert note["id"] == 4
        # a second restore into the now non-empty database is refused and changes nothing
        before = _fingerprint(target)
        with pytest.raises(BackupError, match=r"already holds data.*--replace"):
            restore_database(target, tmp_path / "backup")
        assert _fingerprint(target) == before
        # --replace: the same state as a restore into an empty database (idempotent)
        restore_database(target, tmp_path / "backup", replace=True)
        restore_database(target, tmp_path / "backup", replace=True)
        assert _fingerprint(target) == original


def test_backups_of_the_same_data_are_identical_and_replace_the_previous_one(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_note(conn, title="one", body="two", embedder=FixedEmbedder())
    first = backup_database(database_url, tmp_path / "b")
    second = backup_database(database_url, tmp_path / "b")  # replaces the first in place

    assert [t.sha256 for t in first.tables] == [t.sha256 for t in second.tables]
    assert read_manifest(tmp_path / "b") == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging left behind


def test_bad_paths_are_clear_errors(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep me")

    with pytest.raises(BackupError, match="is a file"):
        backup_database(database_url, tmp_path / "a-file")
    with pytest.raises(BackupError, match="not a RegimeLab backup"):
        backup_database(database_url, tmp_path / "other")
    assert (tmp_path / "other" / "precious.txt").read_text() == "keep me"
    with pytest.raises(BackupError, match="cannot write"):
        backup_database(database_url, tmp_path / "a-file" / "below")
    with pytest.raises(BackupError, match="no backup at"):
        restore_database(database_url, tmp_path / "missing")
    with pytest.raises(BackupError, match="not a RegimeLab backup"):
        restore_database(database_url, tmp_path / "other")


def _edit_manifest(path: Path, **changes: Any) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_wrong_schema_version_or_a_damaged_backup_restores_nothing(
    database_url: str, pg_server_url: str, template_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_note(conn, title="one", body="two")
    backup = tmp_path / "b"
    manifest = backup_database(database_url, backup)

    for target in _fresh_database(pg_server_url, template_database):
        empty = _fingerprint(target)
        _edit_manifest(backup, migrations=[*manifest.migrations, "20991231000000_future"])
        with pytest.raises(BackupError, match="schema version"):
            restore_database(target, backup)
        _edit_manifest(backup, migrations=manifest.migrations, format="regimelab-backup/99")
        with pytest.raises(BackupError, match="regimelab-backup/99"):
            restore_database(target, backup)
        _edit_manifest(backup, format=manifest.format)
        notes = backup / "tables" / "research_notes.csv.gz"
        notes.write_bytes(gzip.compress(b"id,title\n1,forged\n"))
        with pytest.raises(BackupError, match="does not match its checksum"):
            restore_database(target, backup)
        notes.unlink()
        with pytest.raises(BackupError, match="missing"):
            restore_database(target, backup)
        assert _fingerprint(target) == empty


def test_a_database_without_the_schema_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="regimelab migrate"):
        backup_database(empty_database_url, tmp_path / "b")
    assert not (tmp_path / "b").exists()
