# Strategy lab: backtest a strategy, sweep its parameters, walk it forward, export the spec.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="RegimeLab: strategy lab")

with app.setup:
    import json

    import marimo as mo
    import msgspec
    import polars as pl
    from _charts import area_chart, heatmap, line_chart, shown_as

    from engine.backtest.engine import run_backtest
    from engine.backtest.runs import load_inputs
    from engine.backtest.spec import BacktestSpec, parse_grid
    from engine.backtest.summary import (
        backtest_payload,
        best_params,
        drawdown_frame,
        growth_curves,
        strategy_payload,
        sweep_surface,
    )
    from engine.backtest.walkforward import OBJECTIVES, WalkForwardSpec, walk_forward, windows
    from engine.ingest.ensure import ensure_bars, resolve_symbols
    from engine.io.api_client import API_KEY_ENV, API_URL_ENV, api_call, send
    from engine.io.regimes import latest_run_ids
    from engine.io.session import open_session
    from engine.providers.registry import provider_names
    from engine.regimes.base import MODEL_NAMES
    from engine.regimes.runs import run_regime_fit
    from engine.regimes.service import RegimeSpec
    from engine.strategies.base import SpecError, get_strategy, strategy_names

    METRIC_FORMATS = {
        "total_return": shown_as("{:+.1%}"),
        "cagr": shown_as("{:+.1%}"),
        "annual_return": shown_as("{:+.1%}"),
        "annual_volatility": shown_as("{:.1%}"),
        "max_drawdown": shown_as("{:.1%}"),
        "exposure": shown_as("{:.0%}"),
        "win_rate": shown_as("{:.0%}"),
        "share_of_time": shown_as("{:.0%}"),
        "benchmark_return": shown_as("{:+.1%}"),
        "sharpe": shown_as("{:.2f}"),
        "sortino": shown_as("{:.2f}"),
        "calmar": shown_as("{:.2f}"),
    }
    SHOWN_METRICS = [
        "total_return",
        "cagr",
        "annual_volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "exposure",
        "trades",
        "win_rate",
        "benchmark_return",
    ]
    EXAMPLE_GRIDS = {"sma_crossover": "fast=10:50:10\nslow=100:250:50"}


@app.cell
def _():
    mo.md("""
    # Strategy lab

    Choose a strategy, its parameters and a grid to sweep. Targets decided at a bar's
    close trade at the next bar; per-regime metrics use the causal (filtered) labels of
    the newest stored run of the regime model. Runs here are not stored: export the spec
    at the bottom to save it through the API, where the scheduler computes its signals.
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
    symbols_text = mo.ui.text(value="SPX,IXIC", label="symbols")
    strategy = mo.ui.dropdown(options=strategy_names(), value="sma_crossover", label="strategy")
    fees_bps = mo.ui.number(start=0, stop=500, step=1, value=5, label="fees (bps)")
    regime_model = mo.ui.dropdown(options=["none", *MODEL_NAMES], value="hmm", label="regime model")
    fit_missing = mo.ui.checkbox(value=True, label="fit and store a run of it if none is stored")
    train_bars = mo.ui.number(start=60, stop=5000, step=21, value=504, label="walk-forward train")
    test_bars = mo.ui.number(start=5, stop=1000, step=21, value=126, label="test (bars)")
    objective = mo.ui.dropdown(options=list(OBJECTIVES), value="sharpe", label="objective")
    mo.vstack(
        [
            mo.hstack([provider, symbols_text, strategy, fees_bps], justify="start"),
            mo.hstack([regime_model, fit_missing], justify="start"),
            mo.hstack([train_bars, test_bars, objective], justify="start"),
        ]
    )
    return (
        fees_bps,
        fit_missing,
        objective,
        provider,
        regime_model,
        strategy,
        symbols_text,
        test_bars,
        train_bars,
    )


@app.cell
def _(strategy):
    _defaults = msgspec.to_builtins(get_strategy(strategy.value).make({}))
    params_editor = mo.ui.code_editor(
        value=json.dumps(_defaults, indent=2),
        language="json",
        label=f"{strategy.value} parameters (JSON)",
        min_height=80,
    )
    grid_editor = mo.ui.text_area(
        value=EXAMPLE_GRIDS.get(strategy.value, ""),
        label="grid: one k=start:stop:step or k=a,b,c per line (blank: no sweep)",
        rows=3,
    )
    mo.hstack([params_editor, grid_editor], widths=[1, 1])
    return grid_editor, params_editor


@app.cell
def _(provider, session, symbols_text):
    symbols = resolve_symbols(provider.value, symbols_text.value)
    mo.stop(not symbols, mo.callout(mo.md("Name at least one symbol."), kind="warn"))
    with mo.status.spinner(title=f"Loading {', '.join(symbols)} from {provider.value}"):
        _ingested = ensure_bars(session, provider.value, symbols)
    mo.md(f"Ingest run {_ingested.run_id} loaded the missing symbols." if _ingested else "")
    return (symbols,)


@app.cell
def _(fit_missing, regime_model, session, symbols):
    regime_runs: dict[str, int] = {}
    if regime_model.value != "none":
        with session.connect() as _conn:
            regime_runs = latest_run_ids(_conn, regime_model.value, symbols)
        _missing = [s for s in symbols if s not in regime_runs]
        if _missing and fit_missing.value:
            with mo.status.spinner(title=f"Fitting {regime_model.value} on {_missing}"):
                _run_id, _ = run_regime_fit(
                    session.database_url,
                    RegimeSpec(model=regime_model.value, n_states=session.settings.regime_states),
                    _missing,
                    timeout=session.settings.connect_timeout,
                )
            regime_runs = {**regime_runs, **dict.fromkeys(_missing, _run_id)}
    _without = [s for s in symbols if s not in regime_runs]
    mo.md(
        f"Regimes: {regime_model.value} run(s) "
        + ", ".join(f"{s} #{run}" for s, run in regime_runs.items())
        + (f"; none stored for {_without} (no per-regime metrics)" if _without else "")
        if regime_model.value != "none"
        else "No regime model: no per-regime metrics."
    )
    return (regime_runs,)


@app.cell
def _(fees_bps, grid_editor, params_editor, regime_model, strategy, symbols):
    try:
        _grid = parse_grid(line for line in grid_editor.value.splitlines() if line.strip())
        _params = {
            k: v for k, v in json.loads(params_editor.value or "{}").items() if k not in _grid
        }
        _base = {
            "strategy": strategy.value,
            "symbols": list(symbols),
            "params": _params,
            "execution": {"fees_bps": fees_bps.value},
            "regimes": None if regime_model.value == "none" else {"model": regime_model.value},
        }
        spec = BacktestSpec.parse(_base)
        grid_spec = BacktestSpec.parse({**_base, "grid": _grid}) if _grid else None
        spec_error = None
    except (SpecError, ValueError) as error:
        spec, grid_spec, spec_error = None, None, str(error)
    mo.stop(spec is None, mo.callout(mo.md(f"**Invalid spec:** {spec_error}"), kind="danger"))
    return grid_spec, spec


@app.cell
def _(regime_runs, session, spec):
    with session.connect() as _conn:  # labels: the newest stored run per symbol
        bars, regimes = load_inputs(_conn, spec)
    mo.stop(bars.is_empty(), mo.callout(mo.md("No stored bars for these symbols."), kind="warn"))
    with mo.status.spinner(title=f"Backtesting {spec.strategy}"):
        result = run_backtest(bars, spec, regimes)
    curves = growth_curves(result.equity)
    shown = mo.ui.dropdown(options=list(spec.symbols), value=spec.symbols[0], label="symbol shown")
    _runs = sorted(set(regime_runs.values()))
    mo.hstack([shown, mo.md(f"labels of regime run(s) {_runs}" if _runs else "")], justify="start")
    return bars, curves, regimes, result, shown


@app.cell
def _(curves, shown, spec):
    _curve = curves.filter(pl.col("symbol") == shown.value)
    mo.vstack(
        [
            line_chart(
                _curve,
                x="ts",
                y="growth",
                color="series",
                title=f"{shown.value}: {spec.strategy} vs benchmark (growth of 1)",
                y_title="growth of 1",
                log_scale=True,
            ),
            area_chart(
                drawdown_frame(_curve),
                x="ts",
                y="drawdown",
                color="series",
                title=f"{shown.value}: drawdown below the running peak",
            ),
        ]
    )
    return


@app.cell
def _(result):
    _overall = result.metrics.select("symbol", *SHOWN_METRICS)
    _tables = [
        mo.md("## Metrics overall"),
        mo.ui.table(_overall, selection=None, format_mapping=METRIC_FORMATS),
    ]
    if result.regime_metrics is not None:
        _per_regime = result.regime_metrics.select(
            "symbol", "regime", "share_of_time", *SHOWN_METRICS
        ).sort("symbol", "regime", nulls_last=True)
        _tables += [
            mo.md(
                "## Metrics per regime\n\nEach bar's return belongs to the regime known at "
                "the previous close; regime *null* is the model's warm-up."
            ),
            mo.ui.table(_per_regime, selection=None, format_mapping=METRIC_FORMATS),
        ]
    mo.vstack(_tables)
    return


@app.cell
def _(bars, grid_spec, objective, regimes):
    mo.stop(grid_spec is None, mo.md("*No grid: add one above to sweep parameters.*"))
    _sets = len(grid_spec.param_sets()) * len(grid_spec.symbols)
    with mo.status.spinner(title=f"Sweeping {_sets} backtests"):
        sweep = run_backtest(bars, grid_spec, regimes, keep_equity=False, keep_trades=False)
    _names = list(grid_spec.grid)
    _best = best_params(sweep.metrics, _names, objective.value)
    _charts = []
    if len(_names) >= 2:
        _charts.append(
            heatmap(
                sweep_surface(sweep.metrics, _names[0], _names[1], objective.value),
                x=_names[0],
                y=_names[1],
                value=objective.value,
                title=f"Sweep: mean {objective.value} across symbols",
                scheme="viridis",
            )
        )
    mo.vstack(
        [
            mo.md(f"## Parameter sweep\n\nBest mean {objective.value}: `{_best}`"),
            *_charts,
            mo.ui.table(
                sweep.metrics.select(*_names, "symbol", *SHOWN_METRICS),
                selection=None,
                format_mapping=METRIC_FORMATS,
                page_size=10,
            ),
        ]
    )
    return


@app.cell
def _(objective, test_bars, train_bars):
    try:
        walk = WalkForwardSpec(
            train=int(train_bars.value), test=int(test_bars.value), metric=objective.value
        )
        walk_spec_error = None
    except SpecError as error:
        walk, walk_spec_error = None, str(error)
    mo.md(f"**Walk-forward:** {walk_spec_error}" if walk_spec_error else "")
    return (walk,)


@app.cell
def _(bars, grid_spec, regimes, spec, walk):
    mo.stop(walk is None)
    _walked = grid_spec or spec
    _windows = len(windows(bars["ts"].unique().sort(), walk))
    mo.stop(
        _windows == 0,
        mo.callout(mo.md("Too little history for one walk-forward window."), kind="warn"),
    )
    with mo.status.progress_bar(
        total=_windows, title="Walk-forward windows", remove_on_exit=True
    ) as _bar:
        walked = walk_forward(bars, _walked, walk, regimes, progress=lambda *_: _bar.update())
    mo.vstack(
        [
            mo.md(
                f"## Walk-forward out of sample\n\nTrain {walk.train} bars, test {walk.test}: "
                f"each test window trades the set with the best in-sample {walk.metric}."
            ),
            line_chart(
                growth_curves(walked.equity, label="out of sample"),
                x="ts",
                y="growth",
                color="series",
                dash="symbol",
                title="Stitched out-of-sample curves vs benchmark (all symbols)",
                y_title="growth of 1",
                log_scale=True,
            ),
            mo.ui.table(
                walked.metrics.select("symbol", *SHOWN_METRICS),
                selection=None,
                format_mapping=METRIC_FORMATS,
            ),
        ]
    )
    return


@app.cell
def _(spec):
    strategy_name = mo.ui.text(
        value=f"{spec.strategy}-{'-'.join(spec.symbols)}".lower()[:64], label="strategy name"
    )
    save = mo.ui.run_button(label="Save strategy through the API")
    return save, strategy_name


@app.cell
def _(save, session, spec, strategy_name, walk):
    _settings = session.settings
    _save = strategy_payload(strategy_name.value, spec)
    _job = backtest_payload(spec, walk)
    mo.vstack(
        [
            mo.md(
                "## Export the spec\n\nSave the single parameter set as a named strategy "
                "(`POST /api/v1/strategies`); the scheduler then computes its signals after "
                "each watchlist ingest. `POST /api/v1/backtests` runs the sweep and "
                "walk-forward as an API job."
            ),
            strategy_name,
            mo.md(
                "```bash\n"
                + api_call(_settings.api_url, "/api/v1/strategies", _save).curl()
                + "\n```"
            ),
            mo.md(
                "```bash\n"
                + api_call(_settings.api_url, "/api/v1/backtests", _job).curl()
                + "\n```"
            ),
            save
            if _settings.api_key
            else mo.callout(
                mo.md(
                    f"To save from here, set `{API_URL_ENV}` (now {_settings.api_url}) and "
                    f"`{API_KEY_ENV}` (a key with write scope: `uv run regimelab api-keys "
                    "create --name me --scopes read,write`) in `.env` or the environment and "
                    "restart the notebook."
                ),
                kind="info",
            ),
        ]
    )
    return


@app.cell
def _(save, session, spec, strategy_name):
    mo.stop(not save.value)
    _settings = session.settings
    _call = api_call(
        _settings.api_url, "/api/v1/strategies", strategy_payload(strategy_name.value, spec)
    )
    _reply = send(_call, _settings.api_key.reveal() if _settings.api_key else "")
    mo.callout(
        mo.md(
            f"Saved strategy **{strategy_name.value}**."
            if _reply.ok
            else f"The API refused: {_reply.detail}"
        ),
        kind="success" if _reply.ok else "danger",
    )
    return


if __name__ == "__main__":
    app.run()
