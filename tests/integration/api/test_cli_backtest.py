"""`regimelab backtest | strategies | signals` as a user runs them: real processes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.integration.api.cli_process import one_error_line, run_cli, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "sma_crossoverr", "--symbols", "SPX"), "unknown strategy 'sma_crossoverr'"),
        (
            (
                "--strategy",
                "sma_crossover",
                "--symbols",
                "SPX",
                "--param",
                "fast=50",
                "--param",
                "slow=20",
            ),
            "slow (20) must be greater than fast (50)",
        ),
        (("--strategy", "sma_crossover", "--symbols", " , "), "the universe is empty"),
        (
            ("--strategy", "sma_crossover", "--symbols", "SPX", "--fees-bps", "-5"),
            "fees_bps must be",
        ),
        (("--strategy", "sma_crossover", "--symbols", "SPX", "--grid", "fast=9:1:1"), "is empty"),
        (("--symbols", "SPX"), "give --strategy and --symbols"),
    ],
)
def test_bad_specs_are_one_clear_line_before_any_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli(tmp_path, "backtest", *args)
    assert message in one_error_line(result)
    assert not any((tmp_path / "state").iterdir())  # rejected before any server started


@pytest.mark.slow
def test_backtest_prints_metrics_as_table_json_and_csv_and_writes_equity(tmp_path: Path) -> None:
    assert (
        run_cli(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX,IXIC").returncode == 0
    )
    common = ("--strategy", "sma_crossover", "--symbols", "SPX,IXIC", "--fees-bps", "10")

    as_json = run_cli(
        tmp_path,
        "backtest",
        *common,
        "--param",
        "fast=20",
        "--param",
        "slow=100",
        "--format",
        "json",
        "--equity-out",
        str(tmp_path / "equity.csv"),
    )

    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [r["symbol"] for r in records] == ["IXIC", "SPX"]
    for record in records:
        assert record["params"] == {"fast": 20, "slow": 100, "kind": "sma", "short": False}
        for name in ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "total_fees"):
            assert isinstance(record[name], int | float)
        assert -1 < record["max_drawdown"] < 0 and record["trades"] > 10
    assert "run 1: sma_crossover, 1 parameter set(s) x 2 symbol(s)" in as_json.stderr
    equity = pl.read_csv(tmp_path / "equity.csv")
    assert equity.height == 2 * 5031 and {"symbol", "ts", "equity", "benchmark"} <= set(
        equity.columns
    )

    swept = run_cli(
        tmp_path,
        "backtest",
        *common,
        "--grid",
        "fast=10:30:10",
        "--grid",
        "slow=100,200",
        "--format",
        "csv",
    )
    assert swept.returncode == 0, swept.stderr
    table = pl.read_csv(swept.stdout.encode())
    assert table.height == 3 * 2 * 2
    assert table.select("fast", "slow").unique().height == 6

    again = run_cli(tmp_path, "backtest", "--rerun", "1", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == records  # the stored spec reproduces the run
    listed = run_cli(tmp_path, "backtest-runs")
    assert listed.returncode == 0, listed.stderr
    assert "sma_crossover" in listed.stdout and "succeeded" in listed.stdout

    shown = run_cli(tmp_path, "backtest", *common, "--grid", "fast=10,20")
    assert shown.returncode == 0, shown.stderr
    assert "sharpe" in shown.stdout and "SPX" in shown.stdout


@pytest.mark.slow
def test_walk_forward_and_signals_from_the_command_line(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX").returncode == 0

    walked = run_cli(
        tmp_path,
        "backtest",
        "--strategy",
        "sma_crossover",
        "--symbols",
        "SPX",
        "--grid",
        "fast=10,50",
        "--grid",
        "slow=100,200",
        "--start",
        "2008-01-01",
        "--walk-forward",
        "504:126",
        "--format",
        "json",
    )
    assert walked.returncode == 0, walked.stderr
    report = json.loads(walked.stdout)
    assert report["metrics"][0]["symbol"] == "SPX"
    assert len(report["windows"]) >= 10
    rerun = run_cli(tmp_path, "backtest", "--rerun", str(report["run_id"]), "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["metrics"] == report["metrics"]
    bad = run_cli(
        tmp_path,
        "backtest",
        "--strategy",
        "sma_crossover",
        "--symbols",
        "SPX",
        "--walk-forward",
        "504:126:10",
    )
    assert "step" in one_error_line(bad)

    saved = run_cli(
        tmp_path,
        "backtest",
        "--strategy",
        "sma_crossover",
        "--symbols",
        "SPX",
        "--param",
        "fast=10",
        "--param",
        "slow=50",
        "--save-as",
        "spx-cross",
    )
    assert saved.returncode == 0, saved.stderr
    signals = run_cli(tmp_path, "signals", "--format", "json")
    assert signals.returncode == 0, signals.stderr
    (signal,) = json.loads(signals.stdout)
    assert signal["strategy"] == "spx-cross" and signal["target"] in (0.0, 1.0)

    listed = run_cli(tmp_path, "strategies")
    assert listed.returncode == 0 and "regime_filter" in listed.stdout


@pytest.mark.slow
def test_regime_filter_on_sample_spx_prints_metrics_per_regime(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX").returncode == 0
    fitted = run_cli(
        tmp_path,
        "regimes",
        "fit",
        "--model",
        "hmm",
        "--symbols",
        "SPX",
        "--walk-forward",
        "expanding",
        "--refit-every",
        "252",
        "--workers",
        "1",
    )
    assert fitted.returncode == 0, fitted.stderr

    result = run_cli(
        tmp_path,
        "backtest",
        "--strategy",
        "regime_filter",
        "--symbols",
        "SPX",
        "--param",
        "base=sma_crossover",
        "--param",
        'base_params={"fast": 20, "slow": 100}',
        "--param",
        "regimes=[0]",
        "--regime-model",
        "hmm",
        "--fees-bps",
        "5",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("per regime")
    rows = [line.split() for line in lines[start + 2 :] if line.strip()]
    assert [row[1] for row in rows] == ["0", "1", "unknown"]  # regime column
    assert all(row[0] == "SPX" for row in rows)
    # exposure in the stressed regime: only the bar between a switch and the order it
    # triggers (decided at the close, filled at the next close)
    assert int(rows[1][8].rstrip("%")) < 10 < int(rows[0][8].rstrip("%"))
