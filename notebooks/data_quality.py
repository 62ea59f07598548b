# Data quality: coverage against the exchange calendar, quality flags, ingest runs, cache.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="RegimeLab: data quality")

with app.setup:
    import marimo as mo
    import polars as pl
    from _charts import bar_chart, shown_as, timeline_chart

    from engine.ingest.coverage import (
        cache_hit_rates,
        calendar_coverage,
        ingest_run_frame,
        missing_sessions,
        quality_flags,
    )
    from engine.ingest.ensure import load_research_bars, stored_or_sample_symbols
    from engine.ingest.seed import SEED_SYMBOLS
    from engine.io.quality import (
        cache_server_stats,
        instrument_calendars,
        recent_ingest_runs,
    )
    from engine.io.session import open_session

    PERCENT = shown_as("{:.1%}")


@app.cell
def _():
    mo.md("""
    # Data quality

    What is stored and how healthy it is: each symbol's daily bars against its exchange
    calendar (sessions without a bar are gaps, reported and never invented), bars worth a
    second look, the recent ingest runs with what their checks rejected, and how often the
    provider cache answered instead of the provider.
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
    symbols = mo.ui.multiselect(options=stored, value=stored[:20], label="symbols")
    symbols
    return (symbols,)


@app.cell
def _(session, symbols):
    mo.stop(not symbols.value, mo.callout(mo.md("Pick at least one symbol."), kind="warn"))
    with mo.status.spinner(title=f"Reading bars of {len(symbols.value)} symbol(s)"):
        bars = load_research_bars(session, symbols.value)
        with session.connect() as _conn:
            calendars = instrument_calendars(_conn, symbols.value)
        coverage = calendar_coverage(bars, calendars)
        gaps = missing_sessions(bars, calendars)
    mo.vstack(
        [
            mo.md("## Coverage against the exchange calendar"),
            mo.ui.table(
                coverage,
                selection=None,
                format_mapping={"coverage": PERCENT},
            ),
            bar_chart(
                coverage.with_columns(pl.col("missing").fill_null(0)),
                x="missing",
                y="symbol",
                title="Missing sessions per symbol",
            ),
        ]
    )
    return bars, gaps


@app.cell
def _(gaps):
    mo.vstack(
        [
            mo.md(f"## Gaps: {gaps.height} missing session(s)"),
            timeline_chart(gaps, x="day", y="symbol", title="Sessions without a bar")
            if gaps.height
            else mo.md("*No session of any calendar is missing.*"),
        ]
    )
    return


@app.cell
def _(bars):
    _flags = quality_flags(bars)
    mo.vstack(
        [
            mo.md(
                "## Quality flags per symbol\n\nStored bars passed the ingest checks; these "
                "are plausible but worth a look: zero volume, high == low, an unchanged "
                "close, a return beyond 8 robust standard deviations, no adjusted close, "
                "and how many days old the last bar is."
            ),
            mo.ui.table(_flags, selection=None),
        ]
    )
    return


@app.cell
def _(session):
    with session.connect() as _conn:
        runs = recent_ingest_runs(_conn, limit=200)
    mo.vstack(
        [
            mo.md(f"## Ingest runs (newest {len(runs)})"),
            mo.ui.table(ingest_run_frame(runs), selection=None, page_size=10),
        ]
    )
    return (runs,)


@app.cell
def _(runs, session):
    _rates = cache_hit_rates(runs)
    _server = (
        cache_server_stats(
            session.redis_url,
            session.settings.cache_prefix,
            timeout=session.settings.connect_timeout,
        )
        if session.redis_url
        else {"error": "no Redis configured: every provider call goes to the source"}
    )
    _stats = (
        mo.callout(mo.md(f"Redis: {_server['error']}"), kind="warn")
        if "error" in _server
        else mo.hstack(
            [
                mo.stat(
                    value=PERCENT(_server["hit_rate"]),
                    label="Redis hit rate",
                    caption="every client since the server started",
                ),
                mo.stat(value=f"{_server['keyspace_hits']:,}", label="hits"),
                mo.stat(value=f"{_server['keyspace_misses']:,}", label="misses"),
                mo.stat(value=f"{_server['keys']:,}", label="RegimeLab keys"),
            ],
            justify="start",
        )
    )
    mo.vstack(
        [
            mo.md(
                "## Cache hit rates\n\nProvider calls per ingest run served from Redis "
                "(hit), fetched and stored (miss; refresh for TTL 0), or fetched with Redis "
                "down (bypass)."
            ),
            mo.ui.table(
                _rates,
                selection=None,
                format_mapping={"hit_rate": PERCENT},
            ),
            bar_chart(
                _rates.with_columns(pl.col("hit_rate").fill_null(0.0)),
                x="hit_rate",
                y="provider",
                title="Provider cache hit rate",
                x_format=".0%",
            ),
            _stats,
        ]
    )
    return


if __name__ == "__main__":
    app.run()
