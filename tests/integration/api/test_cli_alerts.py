"""`regimelab alerts list | add | test | check | backfill | remove` as a user runs them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.cli_process import one_error_line, run_cli, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module

BELOW_1000: dict[str, Any] = {
    "name": "spx-below-1000",
    "condition": {
        "kind": "threshold",
        "feature": "close",
        "op": "crosses_below",
        "value": 1000,
        "hysteresis": 50,
    },
    "symbols": ["SPX"],
    "channels": [{"type": "sse"}],
    "severity": "critical",
}
CORRECTION_YAML = """\
name: spx-correction
description: a 10 % fall from the one-year high
condition:
  kind: drawdown
  threshold_pct: 10
  lookback_bars: 252
symbols: [SPX]
active_hours: {start: "00:00", end: "23:59", days: [0, 1, 2, 3, 4]}
"""


def _write(tmp_path: Path, name: str, content: str | dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "value.json",
            {**BELOW_1000, "condition": {**BELOW_1000["condition"], "value": "high"}},
            "condition.value: Expected `float`, got `str`",
        ),
        (
            "feature.yaml",
            "name: lunar\nsymbols: [SPX]\n"
            "condition: {kind: threshold, feature: moon, op: above, value: 1}\n",
            "condition.feature: unknown feature 'moon'",
        ),
        (
            "hook.json",
            {**BELOW_1000, "channels": [{"type": "webhook", "url": "http://127.0.0.1:8000/x"}]},
            "channels[0].url: points to a loopback address",
        ),
        ("cooldown.json", {**BELOW_1000, "cooldown_seconds": -5}, "cooldown_seconds:"),
        ("broken.json", "{not json", "broken.json is not valid JSON"),
    ],
)
def test_an_invalid_rule_file_is_one_line_naming_the_field(
    tmp_path: Path, name: str, content: str | dict[str, Any], message: str
) -> None:
    result = run_cli(tmp_path, "alerts", "add", "--file", _write(tmp_path, name, content))

    assert message in one_error_line(result)
    assert not any((tmp_path / "state").iterdir())  # rejected before any server started


def test_backfill_needs_one_rule_and_a_known_format(tmp_path: Path) -> None:
    assert "--name" in one_error_line(run_cli(tmp_path, "alerts", "backfill"))
    rule = _write(tmp_path, "rule.json", BELOW_1000)
    both = run_cli(tmp_path, "alerts", "backfill", "--name", "x", "--file", rule)
    assert "--name" in one_error_line(both)
    bad = run_cli(tmp_path, "alerts", "backfill", "--file", rule, "--format", "xml")
    assert "--format must be table, json or csv" in one_error_line(bad)


@pytest.mark.slow
def test_add_list_check_backfill_and_remove(tmp_path: Path) -> None:
    def cli(*args: str) -> Any:
        result = run_cli(tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    cli("ingest", "--provider", "sample", "--symbols", "SPX", "--end", "2008-09-30")
    added = cli("alerts", "add", "--file", _write(tmp_path, "rule.json", BELOW_1000))
    assert added.stdout.startswith("stored alert rule 1: spx-below-1000 (threshold ")
    yaml_rule = _write(tmp_path, "rule.yaml", CORRECTION_YAML)
    assert "stored alert rule 2: spx-correction" in cli("alerts", "add", "-f", yaml_rule).stdout
    again = run_cli(tmp_path, "alerts", "add", "--file", yaml_rule)
    assert "exists already" in one_error_line(again)
    replaced = cli("alerts", "add", "--file", yaml_rule, "--replace")
    assert "replaced alert rule 2" in replaced.stdout

    listed = cli("alerts", "list")
    assert "spx-below-1000" in listed.stdout and "spx-correction" in listed.stdout
    assert "drawdown threshold_pct=10.0 lookback_bars=252" in listed.stdout
    assert "2 rule(s)" in listed.stderr

    # live: a rule judges the bars stored after it was saved; October fires it once
    assert "0 new event(s)" in cli("alerts", "check").stderr
    cli("ingest", "--provider", "sample", "--symbols", "SPX", "--end", "2008-10-31")
    checked = cli("alerts", "check")
    assert "2008-10-07" in checked.stdout and "SPX close crossed below 1000" in checked.stdout
    assert "1 new event(s)" in checked.stderr
    assert "0 new event(s)" in cli("alerts", "check").stderr

    # backfill: the firing dates over history, stored or from a file, as csv, json or a table
    cli("ingest", "--provider", "sample", "--symbols", "SPX")
    window = ("--start", "2008-01-01", "--end", "2017-12-31")
    as_csv = cli("alerts", "backfill", "--name", "spx-below-1000", *window, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["symbol"], r["ts"][:10], r["severity"]) for r in rows] == [
        ("SPX", "2008-10-07", "critical")
    ]
    as_json = cli("alerts", "backfill", "--file", yaml_rule, *window, "--format", "json")
    assert [f["ts"][:10] for f in json.loads(as_json.stdout)] == [
        "2010-05-20",
        "2011-08-04",
        "2015-08-24",
    ]
    table = cli("alerts", "backfill", "--name", "spx-correction", *window)
    assert "2011-08-04" in table.stdout and "below its 252-bar high" in table.stdout
    assert "spx-correction: 3 firing(s) on 1 symbol(s)" in table.stderr

    # a rule whose only channel is the live feed: the test publishes on it
    tested = cli("alerts", "test", "spx-below-1000")
    assert tested.stdout.strip() == "sse: ok: published on the live feed"
    no_channels = run_cli(tmp_path, "alerts", "test", "spx-correction")
    assert "has no channels to test" in one_error_line(no_channels)

    assert "removed alert rule 1" in cli("alerts", "remove", "spx-below-1000").stdout
    assert "no alert rule named 'spx-below-1000'" in one_error_line(
        run_cli(tmp_path, "alerts", "remove", "spx-below-1000")
    )
    assert "spx-below-1000" not in cli("alerts", "list").stdout
