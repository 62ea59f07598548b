"""The Altair charts the notebooks share (notebooks/_charts.py, a marimo file of functions)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from types import ModuleType

import polars as pl
import pytest

from engine.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def charts() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_charts", PROJECT_ROOT / "notebooks" / "_charts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _day(i: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)


def test_regime_colours_run_calm_to_turbulent(charts: ModuleType) -> None:
    scale = charts.regime_scale([0, 1, 2], ["calm", "normal", "turbulent"]).to_dict()
    assert scale["domain"] == ["0 calm", "1 normal", "2 turbulent"]
    assert scale["range"][0] == charts.REGIME_RAMP[0]
    assert scale["range"][-1] == charts.REGIME_RAMP[-1]
    assert charts.regime_labels([0, 5], ["calm"]) == ["0 calm", "5"]


def test_price_chart_layers_bands_price_and_events(charts: ModuleType) -> None:
    bars = pl.DataFrame({"ts": [_day(i) for i in range(5)], "close": [1.0, 2, 3, 2, 1]})
    spans = pl.DataFrame({"regime": [0, 1], "start": [_day(0), _day(2)], "end": [_day(2), _day(4)]})
    events = pl.DataFrame(
        {"ts": [_day(3)], "close": [2.0], "message": ["down"], "severity": ["critical"]}
    )
    spec = charts.regime_price_chart(
        bars, spans, title="T", names=["calm", "turbulent"], events=events
    ).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["rect", "line", "point"]
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    without = charts.regime_price_chart(bars, None, title="T").to_dict()
    assert [layer["mark"]["type"] for layer in without["layer"]] == ["line"]


def test_line_chart_dashes_per_symbol(charts: ModuleType) -> None:
    frame = pl.DataFrame(
        {
            "ts": [_day(0), _day(0)],
            "growth": [1.0, 1.0],
            "series": ["strategy", "benchmark"],
            "symbol": ["A", "B"],
        }
    )
    spec = charts.line_chart(frame, x="ts", y="growth", color="series", dash="symbol", title="T")
    encoding = spec.to_dict()["encoding"]
    assert encoding["strokeDash"]["field"] == "symbol"


def test_heatmap_and_missing_values(charts: ModuleType) -> None:
    cells = pl.DataFrame({"from": ["0", "0"], "to": ["0", "1"], "probability": [0.9, 0.1]})
    spec = charts.heatmap(cells, x="to", y="from", value="probability", title="T").to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["rect", "text"]
    assert charts.shown_as("{:.1%}")(0.5) == "50.0%"
    assert charts.shown_as("{:.1%}")(None) == "-"
