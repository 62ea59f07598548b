"""`regimelab notes add | search | list` as a user runs them."""

from __future__ import annotations

from pathlib import Path

from tests.integration.api.cli_process import one_error_line, run_cli, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


def test_notes_are_added_then_found_by_meaning_and_by_words(tmp_path: Path) -> None:
    first = run_cli(
        tmp_path,
        "notes", "add", "--title", "Crash", "--body", "Panic selling as volatility spiked",
        "--symbol", "SPX", "--date", "2008-10-10", "--tag", "crisis",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "1"
    run_cli(tmp_path, "notes", "add", "--title", "Rates", "--body", "The Fed raised rates")

    semantic = run_cli(tmp_path, "notes", "search", "panic selling")
    assert semantic.returncode == 0, semantic.stderr
    assert "by meaning (wordllama" in semantic.stdout
    assert semantic.stdout.index("Crash") < semantic.stdout.index("Rates")

    words = run_cli(tmp_path, "notes", "search", "volatility", "--fulltext")
    assert "by words (full text)" in words.stdout and "Crash" in words.stdout
    assert "Rates" not in words.stdout
    assert "2 notes" in run_cli(tmp_path, "notes", "list").stdout
    assert "--date" in one_error_line(
        run_cli(tmp_path, "notes", "add", "--title", "t", "--body", "b", "--date", "soon")
    )
