"""`regimelab analogs SYMBOL` as a user runs it, on the embedded defaults and sample data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from tests.integration.api.cli_process import (
    error_after_progress,
    one_error_line,
    run_cli,
    state_outside_basetemp,
)

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


def test_analogs_embed_new_bars_then_print_the_nearest_periods(tmp_path: Path) -> None:
    assert "needs at least" not in run_cli(tmp_path, "ingest", "--symbols", "SPX,IXIC").stderr
    result = run_cli(tmp_path, "analogs", "SPX", "--date", "2008-10-10", "--k", "5")
    assert result.returncode == 0, result.stderr
    assert "SPX on 2008-10-10: nearest earlier states" in result.stdout
    assert "what happened next" in result.stdout
    assert "+63 bars" in result.stdout

    as_json = run_cli(tmp_path, "analogs", "SPX", "--date", "2008-10-10", "--k", "5", "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert len(body["analogs"]) == 5
    cutoff = datetime.fromisoformat(body["cutoff"])
    assert all(datetime.fromisoformat(a["ts"]) <= cutoff for a in body["analogs"])
    assert [row["horizon"] for row in body["distribution"]] == [5, 21, 63]

    exact = run_cli(
        tmp_path, "analogs", "IXIC", "--exact", "--universe", "SPX", "--k", "3", "--json"
    )
    assert exact.returncode == 0, exact.stderr
    assert {a["symbol"] for a in json.loads(exact.stdout)["analogs"]} == {"SPX"}

    assert "no bars stored for 'NOPE'" in error_after_progress(run_cli(tmp_path, "analogs", "NOPE"))
    early = run_cli(tmp_path, "analogs", "SPX", "--date", "1999-03-01")
    assert "needs 253 bars of history" in error_after_progress(early)
    assert "k must be between 1 and 1000" in error_after_progress(
        run_cli(tmp_path, "analogs", "SPX", "--k", "0")
    )
    assert "--horizons" in one_error_line(run_cli(tmp_path, "analogs", "SPX", "--horizons", "x"))
