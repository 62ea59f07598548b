"""schema.prisma and the migrations agree: every model and field exists in the migrated
database with the right type, nullability and keys, and the database has nothing extra."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
import pytest

from engine.settings import PROJECT_ROOT

SCHEMA = PROJECT_ROOT / "prisma" / "schema.prisma"

# Prisma scalar -> Postgres udt_name (what information_schema.columns reports).
SCALARS = {
    "String": "text",
    "Int": "int4",
    "BigInt": "int8",
    "Float": "float8",
    "Boolean": "bool",
    "DateTime": "timestamp",
    "Json": "jsonb",
    "Decimal": "numeric",
    "Bytes": "bytea",
}
NATIVE = {"Timestamptz": "timestamptz", "Timestamp": "timestamp", "Text": "text", "Date": "date"}


@dataclass
class Column:
    name: str
    udt: str
    nullable: bool


@dataclass
class Model:
    table: str
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    unique: list[list[str]] = field(default_factory=list)


def _blocks(text: str, keyword: str) -> list[tuple[str, str]]:
    return re.findall(rf"^{keyword}\s+(\w+)\s*\{{(.*?)^\}}", text, flags=re.MULTILINE | re.DOTALL)


def _mapped(body: str, default: str) -> str:
    match = re.search(r'@@map\("([^"]+)"\)', body)
    return match.group(1) if match else default


def parse_schema(text: str) -> dict[str, Model]:
    text = re.sub(r"//.*", "", text)
    enums = {name: _mapped(body, name) for name, body in _blocks(text, "enum")}
    model_blocks = _blocks(text, "model")
    model_names = {name for name, _ in model_blocks}
    models = {}
    for name, body in model_blocks:
        model = Model(table=_mapped(body, name))
        field_to_column = {}
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("@@"):
                continue
            parts = line.split(None, 2)
            field_name, type_spec = parts[0], parts[1]
            attributes = parts[2] if len(parts) > 2 else ""
            base = type_spec.rstrip("?[]")
            if base in model_names:
                continue  # relation field: no column
            column = re.search(r'@map\("([^"]+)"\)', attributes)
            column_name = column.group(1) if column else field_name
            field_to_column[field_name] = column_name
            if base.startswith("Unsupported("):
                udt = re.match(r'Unsupported\("(\w+)', base).group(1)  # type: ignore[union-attr]
            elif base in enums:
                udt = enums[base]
            else:
                native = re.search(r"@db\.(\w+)", attributes)
                udt = NATIVE[native.group(1)] if native else SCALARS[base]
            if type_spec.endswith("[]"):
                udt = "_" + udt
            nullable = type_spec.endswith(("?", "[]"))  # Prisma scalar lists are nullable
            model.columns[column_name] = Column(column_name, udt, nullable)
            if re.search(r"@id\b", attributes):
                model.primary_key = [column_name]
            if re.search(r"@unique\b", attributes):
                model.unique.append([column_name])
        if match := re.search(r"@@id\(\[([^\]]+)\]\)", body):
            model.primary_key = [field_to_column[f.strip()] for f in match.group(1).split(",")]
        for match in re.finditer(r"@@unique\(\[([^\]]+)\]\)", body):
            model.unique.append([field_to_column[f.strip()] for f in match.group(1).split(",")])
        models[model.table] = model
    return models


@pytest.fixture(scope="module")
def prisma_models() -> dict[str, Model]:
    models = parse_schema(SCHEMA.read_text())
    assert len(models) >= 15, "parser found too few models: schema.prisma changed shape?"
    return models


def _db_columns(conn: psycopg.Connection) -> dict[str, dict[str, tuple[str, bool]]]:
    rows = conn.execute(
        "SELECT table_name, column_name, udt_name, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema = 'public'"
    ).fetchall()
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, udt, nullable in rows:
        tables.setdefault(table, {})[column] = (udt, nullable)
    return tables


def _constraint_columns(conn: psycopg.Connection, kind: str) -> dict[str, list[list[str]]]:
    rows = conn.execute(
        """
        SELECT t.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE (%s = 'primary' AND i.indisprimary) OR (%s = 'unique' AND i.indisunique
              AND NOT i.indisprimary)
        GROUP BY i.indexrelid, t.relname
        """,
        (kind, kind),
    ).fetchall()
    found: dict[str, list[list[str]]] = {}
    for table, columns in rows:
        found.setdefault(table, []).append(list(columns))
    return found


def test_every_model_and_field_exists_with_its_type(
    db: psycopg.Connection, prisma_models: dict[str, Model]
) -> None:
    tables = _db_columns(db)
    assert set(tables) - {"_prisma_migrations"} == set(prisma_models)
    for table, model in prisma_models.items():
        assert set(tables[table]) == set(model.columns), f"columns differ in {table}"
        for column in model.columns.values():
            udt, nullable = tables[table][column.name]
            assert udt == column.udt, f"{table}.{column.name}: {udt} in DB, {column.udt} in schema"
            assert nullable == column.nullable, f"{table}.{column.name}: nullability differs"


def test_keys_match(db: psycopg.Connection, prisma_models: dict[str, Model]) -> None:
    primary = _constraint_columns(db, "primary")
    unique = _constraint_columns(db, "unique")
    for table, model in prisma_models.items():
        assert primary.get(table) == [model.primary_key], f"primary key of {table}"
        assert sorted(unique.get(table, [])) == sorted(model.unique), f"unique keys of {table}"


def test_parser_catches_a_mismatch(prisma_models: dict[str, Model]) -> None:
    """Guard against a parser that finds nothing to compare: an edited schema must differ."""
    edited = parse_schema(re.sub(r"(\n\s+name\s+)String\?", r"\1String", SCHEMA.read_text(), count=1))
    assert edited["instruments"].columns["name"].nullable is False
    assert prisma_models["instruments"].columns["name"].nullable is True
