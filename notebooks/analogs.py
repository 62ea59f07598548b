# Analogs: today's market state, its nearest historical analogs, and what followed them.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="RegimeLab: analogs")

with app.setup:
    from datetime import UTC, date, datetime, time

    import marimo as mo
    import polars as pl
    from _charts import analog_fan_chart, outcome_strip_chart, shown_as

    from engine.analogs.service import build_states, default_spec, find_analogs
    from engine.errors import RegimeLabError
    from engine.ingest.ensure import stored_or_sample_symbols
    from engine.ingest.seed import SEED_SYMBOLS
    from engine.io.session import open_session

    PERCENT = shown_as("{:+.1%}")
    HORIZONS = [5, 10, 21, 63, 126]


@app.cell
def _():
    mo.md("""
    # Periods like today

    Every bar of every stored symbol is embedded as a market state (its recent path,
    volatility, trend, drawdown and regime probabilities, in units of its own volatility).
    Pick a symbol and a date: the nearest earlier states (one per episode, none overlapping
    the query's window) are its analogs, and what followed them is a distribution of
    outcomes, not a forecast. See docs/analogs.md.
    """)
    return


@app.cell
def _():
    session = open_session()
    mo.md(f"**Data:** {session.describe()}")
    return (session,)


@app.cell
def _(session):
    with mo.status.spinner(title=f"Reading the stored symbols (empty: loading {SEED_SYMBOLS})"):
        stored = stored_or_sample_symbols(session)
    spec = default_spec(session.settings)
    with (
        mo.status.spinner(title=f"Embedding new bars as market states ({spec.version})"),
        session.connect(autocommit=True) as _conn,
    ):
        report = build_states(_conn, stored, spec)
    mo.md(
        f"Market states **{spec.version}** (window {spec.window} bars): "
        f"{report.states:,} new state(s) embedded for {report.symbols} symbol(s)."
    )
    return spec, stored


@app.cell
def _(stored):
    symbol = mo.ui.dropdown(options=stored, value=stored[0], label="symbol")
    on_day = mo.ui.date(value=date(2008, 10, 10), label="date (the last bar on or before)")
    latest = mo.ui.checkbox(value=False, label="use the latest bar instead")
    k = mo.ui.slider(5, 50, step=5, value=10, label="analogs", show_value=True)
    horizons = mo.ui.multiselect(
        options=[str(h) for h in HORIZONS], value=["5", "21", "63"], label="horizons (bars)"
    )
    universe = mo.ui.multiselect(options=stored, value=stored, label="analogs from")
    exclude = mo.ui.number(start=0, stop=36_500, step=30, value=0, label="skip the last N days")
    mo.vstack(
        [
            mo.hstack([symbol, on_day, latest], justify="start"),
            mo.hstack([k, horizons], justify="start"),
            mo.hstack([universe, exclude], justify="start"),
        ]
    )
    return exclude, horizons, k, latest, on_day, symbol, universe


@app.cell
def _(exclude, horizons, k, latest, on_day, session, spec, symbol, universe):
    mo.stop(not horizons.value, mo.callout(mo.md("Pick at least one horizon."), kind="warn"))
    mo.stop(not universe.value, mo.callout(mo.md("Pick at least one symbol."), kind="warn"))
    _when = None if latest.value else datetime.combine(on_day.value, time.max, tzinfo=UTC)
    _message = ""
    try:
        with mo.status.spinner(title="Searching the market states"), session.connect() as _conn:
            found = find_analogs(
                _conn,
                symbol.value,
                date=_when,
                k=k.value,
                horizons=sorted(int(h) for h in horizons.value),
                universe=universe.value,
                exclude_recent_days=int(exclude.value),
                spec=spec,
            )
    except RegimeLabError as _error:  # too little history, an unknown symbol: say which
        found = None
        _message = str(_error)
    mo.stop(found is None, mo.callout(mo.md(f"**Cannot search:** {_message}"), kind="danger"))
    mo.hstack(
        [
            mo.stat(value=f"{found.ts:%Y-%m-%d}", label=f"{found.symbol} on", caption="query bar"),
            mo.stat(value=str(found.analogs.height), label="analogs", caption=found.method),
            mo.stat(
                value=f"{found.cutoff:%Y-%m-%d}",
                label="latest analog allowed",
                caption="the bar before the query's window",
            ),
        ],
        justify="start",
    )
    return (found,)


@app.cell
def _(found):
    _returns = [f"ret_{h}" for h in found.horizons]
    mo.vstack(
        [
            mo.md("## Nearest earlier market states"),
            mo.ui.table(
                found.analogs,
                selection=None,
                format_mapping=dict.fromkeys(_returns, PERCENT) | {"distance": shown_as("{:.3f}")},
            ),
        ]
    )
    return


@app.cell
def _(found):
    mo.vstack(
        [
            mo.md("## Today's path over its analogs' paths, and what followed"),
            analog_fan_chart(
                found.fan,
                found.query_path,
                found.paths,
                title=f"{found.symbol} (red) vs its analogs: fan of 10-90% and 25-75% outcomes",
            ),
        ]
    )
    return


@app.cell
def _(found):
    _long = found.analogs.unpivot(
        index=["symbol", "ts"],
        on=[f"ret_{h}" for h in found.horizons],
        variable_name="horizon",
        value_name="value",
    ).with_columns(
        pl.col("horizon").str.replace("ret_", "+").add(" bars"),
        pl.format("{} {}", pl.col("symbol"), pl.col("ts").dt.strftime("%Y-%m-%d")).alias("analog"),
    )
    mo.vstack(
        [
            mo.md("## Distribution of forward returns"),
            mo.ui.table(
                found.distribution,
                selection=None,
                format_mapping=dict.fromkeys(
                    ("mean", "median", "q10", "q25", "q75", "q90"), PERCENT
                )
                | {"share_positive": shown_as("{:.0%}")},
            ),
            outcome_strip_chart(
                _long.drop_nulls("value").select("horizon", "analog", "value"),
                title="Each analog's forward return",
            ),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
