"""Audit the locked runtime dependencies for known vulnerabilities (pip-audit).

    uv run python scripts/audit.py            # fail on any known vulnerability
    uv run python scripts/audit.py --strict   # also fail when a package could not be checked

Exports what `uv.lock` pins for the runtime (every extra, no dev or bench groups, not the
project itself) with `uv export --frozen`, and asks pip-audit about those exact versions
(`--no-deps`: the lock already resolved them). Any known vulnerability fails the audit,
fixed upstream or not, unless its id is listed in `REVIEWED` with the reason it does not
affect RegimeLab. The fix is `uv lock --upgrade-package NAME` to a fixed version.

Where pip-audit gets no answer for a package (a proxy that serves PyPI's project JSON but
not its per-version JSON, as on the CI machines), the project JSON still lists the known
vulnerabilities of the package's newest release: a package locked at its newest release is
audited from that. Anything else is reported as not audited: a warning by default, a
failure with `--strict` (or when nothing at all could be checked), so a green audit never
hides that nothing was checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import httpx

ROOT: Final = Path(__file__).resolve().parent.parent

# vulnerability id -> why it does not apply to RegimeLab (reviewed; remove when fixed)
REVIEWED: Final[dict[str, str]] = {}


def export_requirements(target: Path) -> None:
    """Write the locked runtime requirements (pinned, no hashes) to `target`."""
    subprocess.run(
        [
            "uv",
            "export",
            "--frozen",
            "--no-dev",
            "--all-extras",
            "--no-hashes",
            "--no-emit-project",
            "--format",
            "requirements.txt",
            "--output-file",
            str(target),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def run_pip_audit(requirements: Path, service: str, report: Path) -> None:
    """pip-audit's JSON report on `requirements` (its exit code is ours to judge)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--output",
            str(report),
            "--progress-spinner",
            "off",
            "--desc",
            "off",
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )


def locked_versions(requirements: Path) -> dict[str, str]:
    """Package name (normalized) -> locked version, from an exported requirements file."""
    pins = {}
    for line in requirements.read_text().splitlines():
        requirement = line.split(";", 1)[0].strip()
        if requirement and not requirement.startswith("#") and "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[_normalized(name)] = version.strip()
    return pins


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _newest_release_vulns(client: httpx.Client, name: str, version: str) -> dict[str, Any]:
    """A pip-audit-shaped entry for `name` from PyPI's project JSON, audited only when
    `version` is the newest release (the JSON's vulnerabilities are that release's)."""
    try:
        response = client.get(f"https://pypi.org/pypi/{name}/json")
        response.raise_for_status()
        project = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"name": name, "skip_reason": f"PyPI project JSON unavailable ({exc})"}
    newest = project["info"]["version"]
    if newest != version:
        return {"name": name, "skip_reason": f"locked {version}, newest {newest}: not audited"}
    vulns = [
        {
            "id": v["id"],
            "aliases": v.get("aliases") or [],
            "fix_versions": v.get("fixed_in") or [],
        }
        for v in project.get("vulnerabilities") or []
        if not v.get("withdrawn")
    ]
    return {"name": name, "version": version, "vulns": vulns}


def fill_gaps(report: dict[str, Any], pins: dict[str, str]) -> dict[str, Any]:
    """`report` with the packages pip-audit skipped audited from PyPI's project JSON."""
    skipped = [d for d in report.get("dependencies", []) if "skip_reason" in d]
    if not skipped:
        return report
    with httpx.Client(timeout=20, follow_redirects=True) as client, ThreadPoolExecutor(8) as pool:
        filled = dict(
            zip(
                (id(d) for d in skipped),
                pool.map(
                    lambda d: _newest_release_vulns(
                        client, d["name"], pins.get(_normalized(d["name"]), "?")
                    ),
                    skipped,
                ),
                strict=True,
            )
        )
    dependencies = [filled.get(id(d), d) for d in report.get("dependencies", [])]
    return {**report, "dependencies": dependencies}


def summarize(report: dict[str, Any]) -> tuple[list[str], list[str], list[str], int]:
    """(vulnerabilities that fail, reviewed ones, packages not audited, packages audited)."""
    failing: list[str] = []
    reviewed: list[str] = []
    unaudited: list[str] = []
    audited = 0
    for dependency in report.get("dependencies", []):
        name, version = dependency["name"], dependency.get("version", "?")
        if "skip_reason" in dependency:
            unaudited.append(f"{name} ({dependency['skip_reason']})")
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            aliases = ", ".join(vuln.get("aliases") or [])
            line = f"{name} {version}: {vuln['id']}" + (f" ({aliases})" if aliases else "")
            line += f"; fixed in: {fixes}"
            ids = {vuln["id"], *(vuln.get("aliases") or [])}
            known = next((REVIEWED[i] for i in ids if i in REVIEWED), None)
            (reviewed if known else failing).append(
                line + (f"; reviewed: {known}" if known else "")
            )
    return failing, reviewed, unaudited, audited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--service", choices=("pypi", "osv"), default="pypi", help="vulnerability database"
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail when any package could not be audited"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="regimelab-audit-") as folder:
        requirements = Path(folder) / "requirements.txt"
        report_path = Path(folder) / "report.json"
        export_requirements(requirements)
        run_pip_audit(requirements, args.service, report_path)
        if not report_path.is_file():
            print("audit: pip-audit produced no report", file=sys.stderr)
            return 2
        report = fill_gaps(json.loads(report_path.read_text()), locked_versions(requirements))
    failing, reviewed, unaudited, audited = summarize(report)
    total = audited + len(unaudited)
    print(f"audit ({args.service}): {audited} of {total} locked runtime packages checked")
    for line in reviewed:
        print(f"  reviewed, not failing: {line}")
    for line in failing:
        print(f"  VULNERABLE: {line}")
    if unaudited:
        print(
            f"  warning: {len(unaudited)} package(s) could not be audited "
            f"(is the {args.service} service reachable?), e.g. {unaudited[0]}"
        )
    if failing:
        print(
            f"audit failed: {len(failing)} known vulnerabilit(y/ies); upgrade with "
            "`uv lock --upgrade-package NAME`"
        )
        return 1
    if unaudited and (args.strict or audited == 0):
        print("audit failed: not every package could be checked")
        return 2
    print("audit passed: no known vulnerabilities" + (" among those checked" if unaudited else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
