"""The operations of the served OpenAPI document, with requests that reach each one.

Shared by the security tests: they walk every operation the API declares, so a route
added tomorrow is covered without editing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import httpx

METHODS: Final = ("get", "put", "post", "delete", "patch")

# Path parameter values that look real (existing rows are not needed to test guards).
PATH_VALUES: Final = {
    "symbol": "SYN000",
    "provider": "synthetic",
    "dataset": "bars",
    "name": "housekeeping",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of the OpenAPI document."""

    method: str
    path: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == where]

    def url(self, **overrides: str) -> str:
        """The path with every parameter filled (overrides first, then plausible values)."""
        url = self.path
        for parameter in self.parameters("path"):
            name = parameter["name"]
            url = url.replace("{" + name + "}", overrides.get(name) or sample_value(parameter))
        return url


def sample_value(parameter: dict[str, Any]) -> str:
    """A valid-looking value for a path or query parameter, from its schema."""
    schema = parameter.get("schema", {})
    if "example" in schema:
        return str(schema["example"])
    declared = schema.get("type")
    kinds = set(declared) if isinstance(declared, list) else {declared}
    kinds |= {str(s.get("type")) for s in schema.get("oneOf", [])}
    if "integer" in kinds or "number" in kinds:
        return "1"
    if "enum" in schema:
        return str(schema["enum"][0])
    return PATH_VALUES.get(parameter["name"], "SYN000")


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every operation of the document."""
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if isinstance(item.get(method), dict):
                found.append(Operation(method, path, item[method]))
    return found


def fetch_spec(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/schema/openapi.json", timeout=30)
    response.raise_for_status()
    spec: dict[str, Any] = response.json()
    return spec
