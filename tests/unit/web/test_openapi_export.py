"""The dashboard's typed client is generated from the committed OpenAPI document: it must be
the app's current one, so a new or changed route forces `scripts/export_openapi.py` and
`npm --prefix web run gen:api`."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

from engine.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "export_openapi.py"
SCHEMA_TS = PROJECT_ROOT / "web" / "lib" / "api" / "schema.d.ts"
REGENERATE = "run `uv run python scripts/export_openapi.py && npm --prefix web run gen:api`"


def _export_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_openapi", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_openapi_document_is_the_apps() -> None:
    script = _export_script()
    committed = script.OPENAPI_JSON.read_text()
    assert committed == script.render(script.openapi_document()), (
        f"stale openapi.json: {REGENERATE}"
    )


def test_generated_types_cover_every_operation() -> None:
    document = json.loads((PROJECT_ROOT / "web" / "lib" / "api" / "openapi.json").read_text())
    types = SCHEMA_TS.read_text()
    operations = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    missing = [name for name in operations if f"    {name}: {{" not in types]
    assert not missing, f"schema.d.ts lacks {missing}: {REGENERATE}"
    assert all(f'"{path}"' in types for path in document["paths"]), REGENERATE
