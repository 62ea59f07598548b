# Altair charts shared by the research notebooks (imported: `from _charts import ...`).
# A marimo file of reusable functions, so `marimo check notebooks/` covers it too; it holds
# presentation only (encodings, colours, titles), never computation: frames come from engine/.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")

with app.setup:
    from collections.abc import Callable, Sequence

    import altair as alt
    import polars as pl

    # Charts embed their data (exported HTML must stand alone); callers pass one symbol's
    # history at a time, so frames stay in the tens of thousands of rows at most.
    alt.data_transformers.disable_max_rows()

    # Calm (green) to turbulent (red): regimes ascend by volatility, colours follow.
    REGIME_RAMP = ("#1a9850", "#66bd63", "#a6d96a", "#fdae61", "#f46d43", "#d73027")
    WIDTH = "container"
    FACET_WIDTH = 640  # Vega-Lite sizes facets itself: no "container" width there


@app.function
def shown_as(pattern: str) -> Callable[[object], str]:
    """A table cell formatter writing `pattern` ("{:.1%}"), and "-" for a missing value."""
    return lambda value: "-" if value is None else pattern.format(value)


@app.function
def regime_labels(regimes: Sequence[int], names: Sequence[str]) -> list[str]:
    """Legend labels "0 calm", "1 normal", ... for regime numbers `regimes`."""
    return [f"{r} {names[r]}" if 0 <= r < len(names) else str(r) for r in regimes]


@app.function
def regime_scale(regimes: Sequence[int], names: Sequence[str]) -> alt.Scale:
    """A colour scale giving each regime label the same colour in every chart: the K
    regimes spread over a calm-green to turbulent-red ramp."""
    count = max(len(names), max(regimes, default=0) + 1, 2)
    last = len(REGIME_RAMP) - 1
    colors = [REGIME_RAMP[round(i * last / (count - 1))] for i in range(count)]
    return alt.Scale(domain=regime_labels(range(count), names), range=colors)


@app.function
def with_regime_label(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """`frame` with a `label` column naming its `regime` column."""
    return frame.with_columns(
        pl.Series("label", regime_labels(frame["regime"].to_list(), names), dtype=pl.String)
    )


@app.function
def regime_price_chart(
    bars: pl.DataFrame,
    spans: pl.DataFrame | None,
    *,
    title: str,
    names: Sequence[str] = (),
    events: pl.DataFrame | None = None,
    log_scale: bool = True,
    height: int = 320,
) -> alt.LayerChart:
    """Close price of one symbol (`bars`: ts, close) over regime bands (`spans`: regime,
    start, end) and, optionally, event markers (`events`: ts, close, message, severity)."""
    y_scale = alt.Scale(type="log" if log_scale else "linear", zero=False)
    price = (
        alt.Chart(bars.select("ts", "close"))
        .mark_line(color="#222", strokeWidth=1)
        .encode(
            x=alt.X("ts:T", title=None),
            y=alt.Y("close:Q", title="close", scale=y_scale),
            tooltip=[alt.Tooltip("ts:T", title="date"), alt.Tooltip("close:Q", format=",.2f")],
        )
    )
    layers: list[alt.Chart] = []
    if spans is not None and not spans.is_empty():
        bands = with_regime_label(spans.select("regime", "start", "end"), names)
        scale = regime_scale(bands["regime"].to_list(), names)
        layers.append(
            alt.Chart(bands)
            .mark_rect(opacity=0.25)
            .encode(
                x="start:T",
                x2="end:T",
                color=alt.Color("label:N", title="regime", scale=scale),
                tooltip=["label:N", "start:T", "end:T"],
            )
        )
    layers.append(price)
    if events is not None and not events.is_empty():
        layers.append(
            alt.Chart(events.select("ts", "close", "message", "severity"))
            .mark_point(shape="triangle-down", size=90, filled=True)
            .encode(
                x="ts:T",
                y=alt.Y("close:Q", scale=y_scale),
                color=alt.Color(
                    "severity:N",
                    scale=alt.Scale(
                        domain=["info", "warning", "critical"],
                        range=["#1f77b4", "#ff7f0e", "#d62728"],
                    ),
                ),
                tooltip=[alt.Tooltip("ts:T", title="fired"), "severity:N", "message:N"],
            )
        )
    return (
        alt.layer(*layers)
        .resolve_scale(color="independent")
        .properties(title=title, width=WIDTH, height=height)
    )


@app.function
def probability_chart(
    probs: pl.DataFrame, *, title: str, names: Sequence[str] = (), height: int = 140
) -> alt.FacetChart:
    """Stacked regime probabilities over time (`probs`: ts, kind, regime, probability),
    one row per kind (filtered: causal; smoothed: uses future bars, research only)."""
    frame = with_regime_label(probs.select("ts", "kind", "regime", "probability"), names)
    return (
        alt.Chart(frame)
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X("ts:T", title=None),
            y=alt.Y("probability:Q", stack="normalize", title="probability"),
            color=alt.Color(
                "label:N", title="regime", scale=regime_scale(frame["regime"].to_list(), names)
            ),
            tooltip=["ts:T", "label:N", alt.Tooltip("probability:Q", format=".2f")],
        )
        .properties(width=FACET_WIDTH, height=height)
        .facet(row=alt.Row("kind:N", title=None))
        .properties(title=title)
    )


@app.function
def heatmap(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    value: str,
    title: str,
    fmt: str = ".2f",
    scheme: str = "blues",
    size: int = 260,
) -> alt.LayerChart:
    """A heatmap of `value` over the `x` x `y` grid (ordinal axes) with the values written
    in the cells: transition matrices, parameter sweeps."""
    base = alt.Chart(frame.select(x, y, value)).encode(
        x=alt.X(f"{x}:O", title=x), y=alt.Y(f"{y}:O", title=y)
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", title=value, scale=alt.Scale(scheme=scheme)),
        tooltip=[f"{x}:O", f"{y}:O", alt.Tooltip(f"{value}:Q", format=fmt)],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=fmt))
    return alt.layer(cells, text).properties(title=title, width=size, height=size)


@app.function
def forecast_chart(forecast: pl.DataFrame, *, title: str, names: Sequence[str] = ()) -> alt.Chart:
    """Regime probabilities per step ahead (`forecast`: step, regime, probability), stacked."""
    frame = with_regime_label(forecast.select("step", "regime", "probability"), names)
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("step:O", title="bars ahead"),
            y=alt.Y("probability:Q", stack="normalize", title="probability"),
            color=alt.Color(
                "label:N", title="regime", scale=regime_scale(frame["regime"].to_list(), names)
            ),
            tooltip=["step:O", "label:N", alt.Tooltip("probability:Q", format=".2f")],
        )
        .properties(title=title, width=WIDTH, height=200)
    )


@app.function
def line_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    title: str,
    dash: str | None = None,
    y_title: str | None = None,
    y_format: str = ",.2f",
    log_scale: bool = False,
    height: int = 280,
) -> alt.Chart:
    """Lines of `y` over time `x`, one per `color` value (and per `dash` value, drawn
    dashed differently): equity vs benchmark, per symbol."""
    columns = list(dict.fromkeys([x, y, color, *([dash] if dash else [])]))
    encoding: dict[str, object] = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y(
            f"{y}:Q",
            title=y_title or y,
            scale=alt.Scale(type="log" if log_scale else "linear", zero=False),
        ),
        "color": alt.Color(f"{color}:N", title=color),
        "tooltip": [
            f"{x}:T",
            f"{color}:N",
            *([f"{dash}:N"] if dash else []),
            alt.Tooltip(f"{y}:Q", format=y_format),
        ],
    }
    if dash:
        encoding["strokeDash"] = alt.StrokeDash(f"{dash}:N", title=dash)
    return (
        alt.Chart(frame.select(columns))
        .mark_line(strokeWidth=1.2)
        .encode(**encoding)
        .properties(title=title, width=WIDTH, height=height)
    )


@app.function
def area_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    title: str,
    y_format: str = ".1%",
    height: int = 200,
) -> alt.Chart:
    """Overlaid areas of `y` over time `x` per `color` value (drawdowns)."""
    return (
        alt.Chart(frame.select(x, y, color))
        .mark_area(opacity=0.45)
        .encode(
            x=alt.X(f"{x}:T", title=None),
            y=alt.Y(f"{y}:Q", title=y, axis=alt.Axis(format=y_format), stack=None),
            color=alt.Color(f"{color}:N", title=color),
            tooltip=[f"{x}:T", f"{color}:N", alt.Tooltip(f"{y}:Q", format=y_format)],
        )
        .properties(title=title, width=WIDTH, height=height)
    )


@app.function
def bar_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    title: str,
    color: str | None = None,
    x_format: str = ",.0f",
    height: int | None = None,
) -> alt.Chart:
    """Horizontal bars of `x` per category `y` (optionally coloured by `color`)."""
    columns = list(dict.fromkeys([x, y, *([color] if color else [])]))
    encoding: dict[str, object] = {
        "x": alt.X(f"{x}:Q", title=x, axis=alt.Axis(format=x_format)),
        "y": alt.Y(f"{y}:N", title=None, sort="-x"),
        "tooltip": [f"{y}:N", alt.Tooltip(f"{x}:Q", format=x_format)],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
    rows = max(frame.height, 1)
    return (
        alt.Chart(frame.select(columns))
        .mark_bar()
        .encode(**encoding)
        .properties(title=title, width=WIDTH, height=height or min(24 * rows + 20, 480))
    )


@app.function
def timeline_chart(
    frame: pl.DataFrame, *, x: str, y: str, title: str, color: str | None = None
) -> alt.Chart:
    """Ticks at the dates `x` per category `y`: missing sessions, firings."""
    columns = list(dict.fromkeys([x, y, *([color] if color else [])]))
    encoding: dict[str, object] = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y(f"{y}:N", title=None),
        "tooltip": [f"{y}:N", alt.Tooltip(f"{x}:T", title="date")],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
    rows = max(frame[y].n_unique() if frame.height else 1, 1)
    return (
        alt.Chart(frame.select(columns))
        .mark_tick(thickness=2)
        .encode(**encoding)
        .properties(title=title, width=WIDTH, height=30 * rows + 20)
    )


@app.function
def analog_fan_chart(
    fan: pl.DataFrame, query_path: pl.DataFrame, paths: pl.DataFrame, *, title: str
) -> alt.LayerChart:
    """Today's path (`query_path`: offset, value) over its analogs' paths (`paths`: symbol,
    ts, offset, value) and the fan of what followed them (`fan`: offset, q10, q25, median,
    q75, q90): returns from the query or analog date, by bars from it."""
    x = alt.X("offset:Q", title="bars from the date")
    percent = alt.Axis(format=".0%")
    analogs = paths.with_columns(
        pl.format("{} {}", pl.col("symbol"), pl.col("ts").dt.strftime("%Y-%m-%d")).alias("analog")
    ).select("analog", "offset", "value")
    lines = (
        alt.Chart(analogs)
        .mark_line(strokeWidth=0.8, opacity=0.35, color="#8c8c8c")
        .encode(
            x=x,
            y=alt.Y("value:Q", title="return", axis=percent),
            detail="analog:N",
            tooltip=["analog:N", "offset:Q", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    outer = (
        alt.Chart(fan).mark_area(opacity=0.2, color="#4c78a8").encode(x=x, y="q10:Q", y2="q90:Q")
    )
    inner = (
        alt.Chart(fan).mark_area(opacity=0.35, color="#4c78a8").encode(x=x, y="q25:Q", y2="q75:Q")
    )
    median = (
        alt.Chart(fan)
        .mark_line(color="#1f4e79", strokeWidth=2)
        .encode(x=x, y="median:Q", tooltip=["offset:Q", alt.Tooltip("median:Q", format=".1%")])
    )
    today = (
        alt.Chart(query_path)
        .mark_line(color="#d62728", strokeWidth=2.5)
        .encode(x=x, y="value:Q", tooltip=["offset:Q", alt.Tooltip("value:Q", format=".1%")])
    )
    return alt.layer(lines, outer, inner, median, today).properties(
        title=title, width=WIDTH, height=340
    )


@app.function
def outcome_strip_chart(returns: pl.DataFrame, *, title: str) -> alt.Chart:
    """Each analog's forward return (`returns`: horizon, analog, value) as a tick per
    horizon, so the spread and the share above zero show at a glance."""
    return (
        alt.Chart(returns)
        .mark_tick(thickness=2, size=18)
        .encode(
            x=alt.X("value:Q", title="forward return", axis=alt.Axis(format=".0%")),
            y=alt.Y("horizon:N", title=None, sort=None),
            color=alt.condition("datum.value >= 0", alt.value("#1a9850"), alt.value("#d73027")),
            tooltip=["analog:N", "horizon:N", alt.Tooltip("value:Q", format=".1%")],
        )
        .properties(
            title=title, width=WIDTH, height=40 * max(returns["horizon"].n_unique(), 1) + 30
        )
    )


if __name__ == "__main__":
    app.run()
