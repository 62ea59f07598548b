# Alert designer: build a rule with widgets, see when it would have fired, save it via the API.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="RegimeLab: alert designer")

with app.setup:
    from datetime import UTC, date, datetime, time

    import marimo as mo
    import msgspec
    import polars as pl
    from _charts import regime_price_chart, timeline_chart

    from engine.alerts import (
        BAR_COLUMNS,
        RegimeChange,
        RuleError,
        backfill,
        load_alert_inputs,
        parse_rule,
        validate_rule,
    )
    from engine.features.names import FEATURE_NAMES
    from engine.ingest.ensure import ensure_bars, load_research_bars, resolve_symbols
    from engine.io.api_client import API_KEY_ENV, API_URL_ENV, api_call, send
    from engine.io.regimes import load_labels
    from engine.io.session import open_session
    from engine.providers.registry import provider_names
    from engine.regimes.base import MODEL_NAMES
    from engine.regimes.summary import regime_spans

    RULES_PATH = "/api/v1/alerts/rules"


@app.cell
def _():
    mo.md("""
    # Alert designer

    Build an alert rule with the widgets, check it (errors name the field), and backfill
    it over the stored bars: the triangles on the chart are the bars where it would have
    fired, with the same edge triggering, confirmation, hysteresis and cooldown as the live
    evaluation. Then save it through the API. See `docs/alerts.md` for the semantics.
    """)
    return


@app.cell
def _():
    session = open_session()
    mo.md(f"**Data:** {session.describe()}")
    return (session,)


@app.cell
def _():
    name = mo.ui.text(value="spx-drawdown", label="rule name")
    provider = mo.ui.dropdown(options=provider_names(), value="sample", label="provider")
    symbols_text = mo.ui.text(value="SPX", label="symbols")
    watchlist = mo.ui.checkbox(label="also watch the watchlist")
    kind = mo.ui.dropdown(
        options=["drawdown", "regime_change", "threshold", "volatility_spike", "signal_change"],
        value="drawdown",
        label="condition",
    )
    severity = mo.ui.dropdown(
        options=["info", "warning", "critical"], value="warning", label="severity"
    )
    cooldown_days = mo.ui.number(start=0, stop=3650, step=1, value=5, label="cooldown (days)")
    backfill_from = mo.ui.date(value=date(2000, 1, 1), label="backfill from")
    stream = mo.ui.checkbox(value=True, label="dashboard live feed (sse)")
    webhook_url = mo.ui.text(value="", label="webhook URL (optional)", full_width=False)
    mo.vstack(
        [
            mo.hstack([name, provider, symbols_text, watchlist], justify="start"),
            mo.hstack([kind, severity, cooldown_days, backfill_from], justify="start"),
            mo.hstack([stream, webhook_url], justify="start"),
        ]
    )
    return (
        backfill_from,
        cooldown_days,
        kind,
        name,
        provider,
        severity,
        stream,
        symbols_text,
        watchlist,
        webhook_url,
    )


@app.cell
def _(kind):
    _forms = {
        "drawdown": {
            "threshold_pct": mo.ui.number(
                start=0.5, stop=99, step=0.5, value=10, label="% below peak"
            ),
            "lookback_bars": mo.ui.number(
                start=0, stop=5000, step=1, value=0, label="peak over bars (0 = running)"
            ),
        },
        "regime_change": {
            "model": mo.ui.dropdown(options=list(MODEL_NAMES), value="hmm", label="model"),
            "to_regimes": mo.ui.text(value="2", label="into regimes (comma-separated)"),
            "from_regimes": mo.ui.text(value="", label="from regimes (blank: any)"),
            "min_probability": mo.ui.slider(
                0.0, 1.0, step=0.05, value=0.6, label="min probability", show_value=True
            ),
            "confirm_bars": mo.ui.number(start=1, stop=100, value=2, label="confirm bars"),
        },
        "threshold": {
            "feature": mo.ui.dropdown(
                options=[*BAR_COLUMNS, *FEATURE_NAMES], value="realized_vol_20d", label="feature"
            ),
            "op": mo.ui.dropdown(
                options=["above", "below", "crosses_above", "crosses_below"],
                value="crosses_above",
                label="op",
            ),
            "value": mo.ui.number(value=0.3, step=0.01, label="value"),
            "hysteresis": mo.ui.number(start=0, value=0.05, step=0.01, label="hysteresis"),
            "confirm_bars": mo.ui.number(start=1, stop=100, value=1, label="confirm bars"),
        },
        "volatility_spike": {
            "window": mo.ui.number(start=2, stop=1000, value=20, label="window (bars)"),
            "baseline": mo.ui.number(start=2, stop=10_000, value=252, label="baseline (bars)"),
            "z": mo.ui.number(start=0.1, stop=20, step=0.1, value=2.5, label="z"),
        },
        "signal_change": {
            "strategy": mo.ui.text(value="", label="saved strategy"),
            "min_change": mo.ui.number(start=0, value=0, step=0.1, label="min change"),
        },
    }
    condition_form = mo.ui.dictionary(_forms[kind.value], label=f"{kind.value} parameters")
    condition_form
    return (condition_form,)


@app.cell
def _(
    condition_form,
    cooldown_days,
    kind,
    name,
    provider,
    session,
    severity,
    stream,
    symbols_text,
    watchlist,
    webhook_url,
):
    symbols = resolve_symbols(provider.value, symbols_text.value)
    _condition = {"kind": kind.value, **condition_form.value}
    for _key in ("to_regimes", "from_regimes"):  # comma-separated text -> list of ints
        if _key in _condition:
            _text = _condition[_key].strip()
            _condition[_key] = [int(p) for p in _text.split(",") if p.strip().isdigit()] or None
    if kind.value == "drawdown" and not _condition["lookback_bars"]:
        _condition["lookback_bars"] = None
    _channels = [{"type": "sse"}] if stream.value else []
    if webhook_url.value.strip():
        _channels.append({"type": "webhook", "url": webhook_url.value.strip()})
    rule_data = {
        "name": name.value,
        "condition": _condition,
        "symbols": list(symbols),
        "watchlist": watchlist.value,
        "channels": _channels,
        "cooldown_seconds": int(cooldown_days.value) * 86_400,
        "severity": severity.value,
    }
    try:
        rule = parse_rule(rule_data)
        validate_rule(rule, allow_private_targets=session.settings.alert_allow_private_targets)
        rule_error = None
    except RuleError as error:
        rule, rule_error = None, error
    if rule_error is not None:
        _where = rule_error.field or "rule"
        mo.stop(
            True,
            mo.callout(
                mo.md(f"**Invalid rule** at `{_where}`: {rule_error.message}"), kind="danger"
            ),
        )
    mo.md(f"Rule **{rule.name}** is valid.")
    return rule, symbols


@app.cell
def _(backfill_from, provider, rule, session, symbols):
    _watched = list(
        dict.fromkeys([*symbols, *(session.settings.watchlist if rule.watchlist else [])])
    )
    with mo.status.spinner(title=f"Backfilling {rule.name} over {', '.join(_watched)}"):
        ensure_bars(session, provider.value, symbols)
        _start = datetime.combine(backfill_from.value, time(), tzinfo=UTC)
        with session.connect() as _conn:
            inputs = load_alert_inputs(
                _conn, [rule], list(session.settings.watchlist), start=_start
            )
        firings = backfill(rule, inputs, start=_start)
        prices = load_research_bars(session, _watched, start=_start)
    _missing_labels = isinstance(rule.condition, RegimeChange) and all(
        frame.is_empty() for frame in inputs.labels.values()
    )
    mo.vstack(
        [
            mo.md(
                f"## Backfill: {firings.height} firing(s) "
                f"on {firings['symbol'].n_unique()} symbol(s)"
            ),
            mo.callout(
                mo.md(
                    f"No stored {rule.condition.model} labels for these symbols: fit them first "
                    f"(regime explorer, or `uv run regimelab regimes fit --model "
                    f"{rule.condition.model} --symbols {','.join(_watched)}`)."
                ),
                kind="warn",
            )
            if _missing_labels
            else mo.md(""),
        ]
    )
    return firings, inputs, prices


@app.cell
def _(prices):
    _options = sorted(prices["symbol"].unique().to_list()) or ["-"]
    shown = mo.ui.dropdown(options=_options, value=_options[0], label="symbol shown")
    shown
    return (shown,)


@app.cell
def _(firings, inputs, prices, rule, session, shown):
    _bars = prices.filter(pl.col("symbol") == shown.value)
    _events = firings.filter(pl.col("symbol") == shown.value).join(
        _bars.select("symbol", "ts", "close"), on=["symbol", "ts"], how="left"
    )
    _spans, _names = None, []
    if isinstance(rule.condition, RegimeChange):
        _names = inputs.regime_names.get(rule.condition.model, {}).get(shown.value, [])
        with session.connect() as _conn:
            _labels = load_labels(_conn, rule.condition.model, [shown.value])
        _spans = regime_spans(_labels.filter(pl.col("ts") >= _bars["ts"].min()))
    regime_price_chart(
        _bars,
        _spans,
        title=f"{shown.value}: where {rule.name} would have fired",
        names=_names,
        events=_events,
    )
    return


@app.cell
def _(firings):
    mo.vstack(
        [
            timeline_chart(
                firings.select("ts", "symbol", "severity"),
                x="ts",
                y="symbol",
                color="severity",
                title="Firings per symbol",
            )
            if firings.height
            else mo.md("*It would never have fired: loosen the condition.*"),
            mo.ui.table(
                firings.select(
                    pl.col("ts").dt.date().alias("date"), "symbol", "severity", "message"
                ),
                selection=None,
                page_size=10,
            ),
        ]
    )
    return


@app.cell
def _():
    save = mo.ui.run_button(label="Save rule through the API")
    return (save,)


@app.cell
def _(rule, save, session):
    _settings = session.settings
    _call = api_call(_settings.api_url, RULES_PATH, msgspec.to_builtins(rule))
    mo.vstack(
        [
            mo.md(
                f"## Save the rule\n\n`POST {RULES_PATH}` stores it (the API validates it "
                "again); the scheduler then evaluates it every 15 minutes and after each "
                "watchlist ingest, judging only bars stored from now on."
            ),
            mo.md(f"```json\n{_call.body}\n```"),
            mo.md(f"```bash\n{_call.curl()}\n```"),
            save
            if _settings.api_key
            else mo.callout(
                mo.md(
                    f"To save from here, set `{API_URL_ENV}` (now {_settings.api_url}) and "
                    f"`{API_KEY_ENV}` (a key with write scope: `uv run regimelab api-keys "
                    "create --name me --scopes read,write`) in `.env` or the environment and "
                    "restart the notebook. Or save the JSON above as rule.json and run "
                    "`uv run regimelab alerts add --file rule.json`."
                ),
                kind="info",
            ),
        ]
    )
    return


@app.cell
def _(rule, save, session):
    mo.stop(not save.value)
    _settings = session.settings
    _call = api_call(_settings.api_url, RULES_PATH, msgspec.to_builtins(rule))
    _reply = send(_call, _settings.api_key.reveal() if _settings.api_key else "")
    mo.callout(
        mo.md(
            f"Saved alert rule **{rule.name}** (id {_reply.body.get('id')})."
            if _reply.ok and isinstance(_reply.body, dict)
            else f"The API refused: {_reply.detail}"
        ),
        kind="success" if _reply.ok else "danger",
    )
    return


if __name__ == "__main__":
    app.run()
