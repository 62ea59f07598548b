"""Container files are checked statically: no Docker engine is needed.

docker-compose.yml is validated against the vendored Compose Specification schema
(tests/data/compose-spec.json), and every Dockerfile's COPY/ADD sources must exist in
its build context and survive that context's .dockerignore.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_SCHEMA_FILE = REPO_ROOT / "tests" / "data" / "compose-spec.json"

EXPECTED_SERVICES = frozenset({"postgres", "redis", "migrate", "backend", "web"})
BUILT_SERVICES = ("migrate", "backend", "web")
EXPECTED_DEPENDENCIES: dict[str, dict[str, str]] = {
    "postgres": {},
    "redis": {},
    "migrate": {"postgres": "service_healthy"},
    "backend": {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    },
    "web": {"backend": "service_healthy"},
}

ComposeDict = dict[str, Any]


@dataclass(frozen=True)
class CopyInstruction:
    """One COPY/ADD of a Dockerfile that reads from the build context."""

    line: int
    instruction: str
    sources: tuple[str, ...]


# --- helpers -------------------------------------------------------------------------


def load_compose() -> ComposeDict:
    """The parsed docker-compose.yml."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def dockerfile_instructions(text: str) -> Iterator[tuple[int, str]]:
    """Logical Dockerfile instructions with their first line number (continuations joined)."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        yield start, " ".join(part.strip() for part in pending if part.strip())
        pending = []
    if pending:
        yield start, " ".join(pending)


def context_copies(dockerfile_text: str) -> list[CopyInstruction]:
    """COPY/ADD instructions that read the build context (`--from=` copies skipped)."""
    copies: list[CopyInstruction] = []
    for line, instruction in dockerfile_instructions(dockerfile_text):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword not in {"COPY", "ADD"}:
            continue
        rest = rest.strip()
        flags: list[str] = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(flag.startswith("--from=") for flag in flags):
            continue
        arguments = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        assert len(arguments) >= 2, f"line {line}: {keyword} needs a source and a destination"
        sources = tuple(
            source
            for source in arguments[:-1]
            if not (keyword == "ADD" and source.startswith(("http://", "https://", "git@")))
        )
        copies.append(CopyInstruction(line=line, instruction=keyword, sources=sources))
    return copies


def dockerignore_patterns(context: Path) -> list[str]:
    """Non-comment lines of the context's .dockerignore (empty when it has none)."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    lines = (line.strip() for line in ignore_file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_matches(pattern: str, path: str) -> bool:
    """Whether a .dockerignore pattern matches the path or one of its parent folders."""
    pattern = pattern.removeprefix("./").strip("/")
    candidates = [pattern]
    if pattern.startswith("**/"):
        candidates.append(pattern[3:])  # `**/x` also matches `x` at the top
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, candidate) for candidate in candidates for prefix in prefixes
    )


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` (relative to the context) out; the last match wins."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _pattern_matches(pattern.removeprefix("!"), path):
            ignored = not negated
    return ignored


def missing_copy_sources(dockerfile: Path, context: Path) -> list[str]:
    """COPY/ADD sources of `dockerfile` that are absent from, or ignored in, `context`."""
    patterns = dockerignore_patterns(context)
    problems: list[str] = []
    for copy_instruction in context_copies(dockerfile.read_text(encoding="utf-8")):
        for source in copy_instruction.sources:
            where = f"{dockerfile.name}:{copy_instruction.line} {copy_instruction.instruction}"
            relative = source.removeprefix("./").rstrip("/") or "."
            if relative == ".":
                continue  # the whole context
            matches = [
                path.relative_to(context).as_posix()
                for path in context.glob(relative)
                if path.exists()
            ]
            if not matches:
                problems.append(f"{where}: {source} does not exist in {context}")
            elif all(is_dockerignored(match, patterns) for match in matches):
                problems.append(f"{where}: {source} is excluded by .dockerignore")
    return problems


def normalized_depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {dependency: condition}, the short list form meaning service_started."""
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def build_paths(service: dict[str, Any]) -> tuple[Path, Path]:
    """(build context, Dockerfile) of a service that is built from source."""
    build = service["build"]
    context_name = build if isinstance(build, str) else build.get("context", ".")
    dockerfile_name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
    context = (REPO_ROOT / context_name).resolve()
    return context, context / (dockerfile_name or "Dockerfile")


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> ComposeDict:
    return load_compose()


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA_FILE.read_text(encoding="utf-8"))
    assert "draft-07" in schema["$schema"], "the vendored schema declares a new draft"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# --- compose file --------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(
    compose: ComposeDict, compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in compose_validator.iter_errors(compose)
    ]
    assert errors == []


def _set_unknown_service_key(compose: ComposeDict) -> None:
    compose["services"]["backend"]["healthchek"] = compose["services"]["backend"]["healthcheck"]


def _set_bad_condition(compose: ComposeDict) -> None:
    compose["services"]["backend"]["depends_on"]["migrate"]["condition"] = "service_finished"


def _set_env_file_without_path(compose: ComposeDict) -> None:
    compose["services"]["backend"]["env_file"] = [{"required": False}]


def _set_ports_to_mapping(compose: ComposeDict) -> None:
    compose["services"]["web"]["ports"] = {"3000": 3000}


@pytest.mark.parametrize(
    "break_compose",
    [
        _set_unknown_service_key,
        _set_bad_condition,
        _set_env_file_without_path,
        _set_ports_to_mapping,
    ],
)
def test_schema_rejects_a_broken_copy_of_the_compose_file(
    compose: ComposeDict,
    compose_validator: jsonschema.protocols.Validator,
    break_compose: Any,
) -> None:
    broken = copy.deepcopy(compose)
    break_compose(broken)
    with pytest.raises(jsonschema.ValidationError):
        compose_validator.validate(broken)


def test_compose_has_no_obsolete_version_key(compose: ComposeDict) -> None:
    assert "version" not in compose


def test_compose_defines_exactly_the_expected_services(compose: ComposeDict) -> None:
    assert set(compose["services"]) == EXPECTED_SERVICES


@pytest.mark.parametrize("service_name", sorted(EXPECTED_SERVICES))
def test_every_service_has_a_healthcheck(compose: ComposeDict, service_name: str) -> None:
    healthcheck = compose["services"][service_name].get("healthcheck")
    assert healthcheck, f"{service_name} has no healthcheck"
    assert not healthcheck.get("disable", False)
    assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("service_name", sorted(EXPECTED_SERVICES))
def test_service_start_order(compose: ComposeDict, service_name: str) -> None:
    service = compose["services"][service_name]
    assert normalized_depends_on(service) == EXPECTED_DEPENDENCIES[service_name]


def test_backend_reads_an_optional_env_file(compose: ComposeDict) -> None:
    backend = compose["services"]["backend"]
    assert {"path": ".env", "required": False} in backend["env_file"]
    environment = backend["environment"]
    assert environment["DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"


def test_migrate_is_a_one_shot_job_on_the_backend_image(compose: ComposeDict) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["regimelab", "migrate"]
    assert migrate["restart"] == "no"
    assert build_paths(migrate) == build_paths(compose["services"]["backend"])
    assert (
        migrate["environment"]["DATABASE_URL"]
        == (compose["services"]["backend"]["environment"]["DATABASE_URL"])
    )


def test_postgres_keeps_its_data_in_a_named_volume(compose: ComposeDict) -> None:
    volume_names = {
        mount.split(":", 1)[0] for mount in compose["services"]["postgres"].get("volumes", [])
    }
    assert volume_names & set(compose.get("volumes") or {})


# --- Dockerfiles and build contexts --------------------------------------------------


@pytest.mark.parametrize("service_name", BUILT_SERVICES)
def test_build_context_has_its_dockerfile(compose: ComposeDict, service_name: str) -> None:
    context, dockerfile = build_paths(compose["services"][service_name])
    assert context.is_dir()
    assert dockerfile.is_file()


@pytest.mark.parametrize("service_name", BUILT_SERVICES)
def test_dockerfile_copies_only_what_its_context_holds(
    compose: ComposeDict, service_name: str
) -> None:
    context, dockerfile = build_paths(compose["services"][service_name])
    assert context_copies(dockerfile.read_text(encoding="utf-8")), "no COPY from the context"
    assert missing_copy_sources(dockerfile, context) == []


@pytest.mark.parametrize("service_name", BUILT_SERVICES)
def test_build_context_never_ships_the_env_file(compose: ComposeDict, service_name: str) -> None:
    context, _ = build_paths(compose["services"][service_name])
    assert is_dockerignored(".env", dockerignore_patterns(context))


def test_root_dockerignore_lists_the_env_file() -> None:
    assert ".env" in dockerignore_patterns(REPO_ROOT)


def test_copy_check_reports_missing_and_ignored_sources(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("", encoding="utf-8")
    (tmp_path / "secrets.txt").write_text("", encoding="utf-8")
    (tmp_path / ".dockerignore").write_text("secrets.txt\n", encoding="utf-8")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM scratch AS base\n"
        "COPY --from=base /etc/passwd /x\n"
        "COPY --chown=1000:1000 app/ \\\n"
        "     missing.txt /app/\n"
        'ADD ["secrets.txt", "/run/"]\n'
        "COPY app/*.py /src/\n",
        encoding="utf-8",
    )

    problems = missing_copy_sources(dockerfile, tmp_path)

    assert len(problems) == 2
    assert "missing.txt does not exist" in problems[0]
    assert "Dockerfile:3" in problems[0]
    assert "secrets.txt is excluded by .dockerignore" in problems[1]


@pytest.mark.parametrize(
    ("path", "patterns", "ignored"),
    [
        (".env", [".env"], True),
        ("web/node_modules/x", ["**/node_modules"], True),
        ("node_modules", ["**/node_modules"], True),
        (".env.example", [".env.*", "!.env.example"], False),
        ("engine/io/db.py", ["**/__pycache__"], False),
        ("engine/__pycache__/a.pyc", ["**/__pycache__"], True),
    ],
)
def test_dockerignore_matching(path: str, patterns: list[str], ignored: bool) -> None:
    assert is_dockerignored(path, patterns) is ignored
