# Regime explorer: fit a regime model to stored bars and look at what it found.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="RegimeLab: regime explorer")

with app.setup:
    import json
    from datetime import UTC, date, datetime, time

    import marimo as mo
    import polars as pl
    from _charts import (
        forecast_chart,
        heatmap,
        probability_chart,
        regime_labels,
        regime_price_chart,
        shown_as,
    )

    from engine.features.names import FEATURE_NAMES
    from engine.ingest.ensure import ensure_bars, load_research_bars, resolve_symbols
    from engine.io.session import open_session
    from engine.providers.registry import provider_names
    from engine.regimes.base import MODEL_NAMES
    from engine.regimes.fitting import WalkForward
    from engine.regimes.service import RegimeSpec, fit_regimes
    from engine.regimes.stats import model_statistics, regime_names
    from engine.regimes.summary import (
        forecast_frame,
        model_defaults,
        probability_frame,
        regime_spans,
        regime_table,
        transition_frame,
    )


@app.cell
def _():
    mo.md("""
    # Regime explorer

    Pick a provider, symbols and dates, a regime model and its parameters. The model is
    fitted on the stored bars (symbols not stored yet are ingested from the provider
    first) and nothing is written back: `regimelab regimes fit` stores a run.
    Regimes are numbered by ascending volatility, so regime 0 is the calmest.
    """)
    return


@app.cell
def _():
    session = open_session()
    mo.md(f"**Data:** {session.describe()}")
    return (session,)


@app.cell
def _():
    provider = mo.ui.dropdown(options=provider_names(), value="sample", label="provider")
    symbols_text = mo.ui.text(value="SPX,IXIC", label="symbols (synthetic: a count)")
    start_day = mo.ui.date(value=date(2000, 1, 1), label="from")
    end_day = mo.ui.date(value=date.today(), label="to")
    model = mo.ui.dropdown(options=list(MODEL_NAMES), value="hmm", label="model")
    n_states = mo.ui.slider(2, 6, value=3, label="regimes", show_value=True)
    features = mo.ui.multiselect(
        options=list(FEATURE_NAMES), value=["log_return"], label="features (first = return)"
    )
    walk_forward = mo.ui.checkbox(label="walk-forward (expanding refits, out of sample)")
    horizon = mo.ui.slider(5, 60, step=5, value=20, label="forecast bars", show_value=True)
    mo.vstack(
        [
            mo.hstack([provider, symbols_text, start_day, end_day], justify="start"),
            mo.hstack([model, n_states, features], justify="start"),
            mo.hstack([walk_forward, horizon], justify="start"),
        ]
    )
    return (
        end_day,
        features,
        horizon,
        model,
        n_states,
        provider,
        start_day,
        symbols_text,
        walk_forward,
    )


@app.cell
def _(model):
    model_params = mo.ui.code_editor(
        value=json.dumps(model_defaults(model.value), indent=2),
        language="json",
        label=f"{model.value} parameters (JSON)",
        min_height=80,
    )
    model_params
    return (model_params,)


@app.cell
def _(end_day, provider, session, start_day, symbols_text):
    symbols = resolve_symbols(provider.value, symbols_text.value)
    mo.stop(not symbols, mo.callout(mo.md("Name at least one symbol."), kind="warn"))
    with mo.status.spinner(title=f"Loading {', '.join(symbols)} from {provider.value}"):
        ingested = ensure_bars(session, provider.value, symbols)
        bars = load_research_bars(
            session,
            symbols,
            start=datetime.combine(start_day.value, time(), tzinfo=UTC),
            end=datetime.combine(end_day.value, time.max, tzinfo=UTC),
        )
    mo.stop(
        bars.is_empty(),
        mo.callout(mo.md(f"No stored bars for {', '.join(symbols)} in that range."), kind="warn"),
    )
    mo.md(
        f"{bars.height:,} bars of {bars['symbol'].n_unique()} symbol(s)"
        + (f"; ingest run {ingested.run_id} loaded the missing ones" if ingested else "")
    )
    return (bars,)


@app.cell
def _(features, model, model_params, n_states, walk_forward):
    try:
        spec = RegimeSpec(
            model=model.value,
            n_states=n_states.value,
            features=tuple(features.value) or ("log_return",),
            params=json.loads(model_params.value or "{}"),
            walk_forward=WalkForward() if walk_forward.value else None,
        )
        spec_error = None
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        spec, spec_error = None, str(error)
    mo.stop(spec is None, mo.callout(mo.md(f"**Invalid model:** {spec_error}"), kind="danger"))
    return (spec,)


@app.cell
def _(bars, spec):
    _count = bars["symbol"].n_unique()
    with mo.status.progress_bar(
        total=_count, title=f"Fitting {spec.model}", remove_on_exit=True
    ) as _bar:
        try:
            result = fit_regimes(bars, spec, progress=lambda *_: _bar.update())
            fit_error = None
        except ValueError as error:
            result, fit_error = None, str(error)
    mo.stop(result is None, mo.callout(mo.md(f"**Fit failed:** {fit_error}"), kind="danger"))
    _failed = "; ".join(f"{s}: {r}" for s, r in result.failures.items())
    mo.md(
        f"Fitted **{spec.model}** with {spec.n_states} regimes on {len(result.params)} symbol(s)."
        + (f" Not fitted: {_failed}" if _failed else "")
    )
    return (result,)


@app.cell
def _(result):
    shown = mo.ui.dropdown(
        options=sorted(result.params), value=sorted(result.params)[0], label="symbol shown"
    )
    bands_kind = mo.ui.radio(
        options=["filtered", "smoothed"], value="filtered", label="bands from", inline=True
    )
    mo.hstack([shown, bands_kind], justify="start")
    return bands_kind, shown


@app.cell
def _(bands_kind, bars, result, shown):
    symbol = shown.value
    params = result.params[symbol]
    names = regime_names(params.model, params.variances)
    symbol_labels = result.labels.filter(pl.col("symbol") == symbol)
    spans = regime_spans(symbol_labels.filter(pl.col("kind") == bands_kind.value))
    regime_price_chart(
        bars.filter(pl.col("symbol") == symbol),
        spans,
        title=f"{symbol}: close with {bands_kind.value} regime bands",
        names=names,
    )
    return names, params, symbol, symbol_labels


@app.cell
def _(names, symbol, symbol_labels):
    probability_chart(
        probability_frame(symbol_labels),
        title=f"{symbol}: filtered (causal) vs smoothed (uses future bars) probabilities",
        names=names,
    )
    return


@app.cell
def _(names, params, symbol):
    _cells = transition_frame(params)
    _matrix = _cells.with_columns(
        pl.Series("from", regime_labels(_cells["from_regime"].to_list(), names)),
        pl.Series("to", regime_labels(_cells["to_regime"].to_list(), names)),
    )
    _stats = model_statistics(params)
    _fit = ", ".join(
        f"{k} {_stats[k]:,.1f}" for k in ("loglik", "aic", "bic") if _stats[k] is not None
    )
    mo.vstack(
        [
            mo.md(f"## Transition matrix and expected durations ({symbol})"),
            mo.md(f"Fit: {_fit or 'no likelihood for this model'}; {_stats['n_obs']} bars."),
            heatmap(
                _matrix,
                x="to",
                y="from",
                value="probability",
                title="P(next regime | regime)",
            ),
        ]
    )
    return


@app.cell
def _(result, symbol):
    _table = regime_table(result, symbol)
    mo.vstack(
        [
            mo.md(f"## Per-regime return, volatility and durations ({symbol})"),
            mo.md(
                "Returns and volatility are annualized over the causal filtered labels; "
                "expected duration is 1 / (1 - p_ii) bars, spells are the realized runs."
            ),
            mo.ui.table(
                _table,
                selection=None,
                format_mapping={
                    "share_of_time": shown_as("{:.1%}"),
                    "mean_return": shown_as("{:+.1%}"),
                    "volatility": shown_as("{:.1%}"),
                    "sharpe": shown_as("{:.2f}"),
                    "expected_duration": shown_as("{:.1f}"),
                    "mean_duration": shown_as("{:.1f}"),
                },
            ),
        ]
    )
    return


@app.cell
def _(horizon, names, params, result, symbol, symbol_labels):
    _now = result.current.filter(pl.col("symbol") == symbol).row(0, named=True)
    _last = symbol_labels.filter(pl.col("kind") == "filtered").sort("ts")["probs"][-1]
    _ahead = forecast_frame(params, _last.to_list(), horizon.value)
    mo.vstack(
        [
            mo.md(f"## Current regime and forecast ({symbol})"),
            mo.stat(
                value=f"{_now['regime']} {names[_now['regime']]}",
                label=f"regime on {_now['ts']:%Y-%m-%d}",
                caption=f"p = {_now['probability']:.2f}, {_now['days_in_regime']} bar(s) in it",
            ),
            forecast_chart(
                _ahead, title=f"Regime probabilities {horizon.value} bars ahead", names=names
            ),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
