"""`alerts list | add | test | check | backfill | remove`: alert rules from the command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import app, console, parse_date, ready_services
from engine.errors import ConfigError
from engine.settings import Settings, get_settings

if TYPE_CHECKING:
    import polars as pl
    import psycopg

    from engine.alerts import AlertRuleSpec

__all__ = ["add", "backfill", "check", "list_rules", "remove", "test"]

alerts_app = typer.Typer(
    help="Alert rules: store, list, test their channels, evaluate now, try on history.",
    no_args_is_help=True,
)
app.add_typer(alerts_app, name="alerts")

_FORMATS: Final = ("table", "json", "csv")
_EARLIEST: Final = datetime(1800, 1, 1, tzinfo=UTC)  # a backfill without --start: all history

RuleFile = Annotated[
    str | None, typer.Option("--file", "-f", help="a rule as JSON or YAML ('-' reads stdin).")
]


def _out() -> Console:
    """stdout for tables, wide enough for messages when piped."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def _load(text: str, name: str) -> Any:
    """A rule file's content: JSON, or YAML for .yaml/.yml files and non-JSON stdin."""
    if name.endswith((".yaml", ".yml")) or not text.lstrip().startswith(("{", "[")):
        try:  # PyYAML comes with uvicorn[standard]; JSON needs nothing
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError(f"{name}: YAML rules need PyYAML installed; use JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name} is not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from None


def _read_rule(path: str, settings: Settings, *, channels: bool = True) -> AlertRuleSpec:
    """The rule in `path` ('-': stdin), parsed and validated; a RuleError names the field."""
    from engine.alerts import parse_rule, validate_rule

    if path == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        try:
            text, name = Path(path).read_text(), path
        except OSError as exc:
            raise ConfigError(f"cannot read --file {path}: {exc.strerror}") from None
    from api.domain.alerts.services import storage_problem

    spec = parse_rule(_load(text, name))
    checked = spec if channels else msgspec.structs.replace(spec, channels=[])
    validate_rule(checked, allow_private_targets=settings.alert_allow_private_targets)
    problem = storage_problem(spec)
    if problem is not None:
        raise ConfigError(f"{problem[0]}: {problem[1]}")
    return spec


def _stored(conn: psycopg.Connection, name: str) -> tuple[int, AlertRuleSpec]:
    from engine.alerts import from_row
    from engine.io.alerts import get_rule

    row = get_rule(conn, name)
    if row is None:
        raise ConfigError(f"no alert rule named {name!r} (see `regimelab alerts list`)")
    return int(row["id"]), from_row(row)


def _condition(spec: AlertRuleSpec) -> str:
    fields = msgspec.to_builtins(spec.condition)
    kind = fields.pop("kind")
    return f"{kind} " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


@alerts_app.command("list")
def list_rules(
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="only enabled (disabled) rules.")
    ] = None,
) -> None:
    """Stored alert rules: condition, symbols, channels, severity, cooldown."""
    from engine.alerts import RuleError, from_row
    from engine.io.alerts import list_rules as stored_rules
    from engine.io.db import connect

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        rows, total = stored_rules(conn, enabled=enabled, limit=10_000)
    if not rows:
        console.print("no alert rules: add one with `regimelab alerts add --file rule.json`")
        return
    table = Table("id", "name", "condition", "symbols", "channels", "severity", "cooldown", "on")
    for row in rows:
        try:
            spec = from_row(row)
        except RuleError as exc:
            table.add_row(str(row["id"]), row["name"], f"[red]invalid: {exc}[/]", *[""] * 5)
            continue
        symbols = ",".join(spec.symbols) + (" +watchlist" if spec.watchlist else "")
        table.add_row(
            str(row["id"]),
            spec.name,
            _condition(spec),
            symbols.strip(),
            ",".join(ch.__struct_config__.tag for ch in spec.channels) or "-",  # type: ignore[misc]
            spec.severity,
            f"{spec.cooldown_seconds}s",
            "yes" if spec.enabled else "no",
        )
    _out().print(table)
    console.print(f"{total} rule(s)")


@alerts_app.command("add")
def add(
    file: RuleFile = None,
    replace: Annotated[bool, typer.Option(help="replace a stored rule of the same name.")] = False,
) -> None:
    """Validate a rule file and store the rule; a bad rule is one line naming the field."""
    from engine.alerts import to_row
    from engine.io.alerts import get_rule, insert_rule, update_rule
    from engine.io.db import connect

    if file is None:
        raise ConfigError("give --file rule.json (or rule.yaml, or - for stdin)")
    settings = get_settings()
    spec = _read_rule(file, settings)
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout, autocommit=True) as conn,
    ):
        existing = get_rule(conn, spec.name) if replace else None
        if existing is not None:
            rule_id = int(existing["id"])
            update_rule(conn, rule_id, to_row(spec))
            verb = "replaced"
        else:
            rule_id, verb = insert_rule(conn, to_row(spec)), "stored"
    typer.echo(f"{verb} alert rule {rule_id}: {spec.name} ({_condition(spec)})")


@alerts_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="the rule's name.")]) -> None:
    """Delete a stored rule with its events and deliveries."""
    from engine.io.alerts import delete_rule
    from engine.io.db import connect

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout, autocommit=True) as conn,
    ):
        rule_id, _ = _stored(conn, name)
        delete_rule(conn, rule_id)
    typer.echo(f"removed alert rule {rule_id}: {name}")


@alerts_app.command("test")
def test(name: Annotated[str, typer.Argument(help="the rule's name.")]) -> None:
    """Send a notification marked [TEST] through each channel of a rule, now."""
    from api.domain.alerts.services import send_test_notifications
    from api.lib.jobs import JobEnv
    from engine.io.db import connect

    settings = get_settings()
    with ready_services(settings) as endpoints:
        with connect(endpoints.database_url, timeout=settings.connect_timeout) as conn:
            rule_id, spec = _stored(conn, name)
        if not spec.channels:
            raise ConfigError(f"alert rule {name!r} has no channels to test")
        env = JobEnv(settings, endpoints.database_url, endpoints.redis_url)
        outcomes = send_test_notifications(env, rule_id, spec)
    for outcome in outcomes:
        where = f" {outcome.target}" if outcome.target else ""
        status = "ok" if outcome.ok else "FAILED"
        typer.echo(f"{outcome.channel}{where}: {status}: {outcome.detail}")
    failed = sum(not outcome.ok for outcome in outcomes)
    if failed:
        raise ConfigError(f"{failed} of {len(outcomes)} channel(s) failed")


@alerts_app.command("check")
def check(
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="only this rule (repeatable).")
    ] = None,
    deliver: Annotated[bool, typer.Option(help="send due deliveries afterwards.")] = True,
) -> None:
    """Evaluate the enabled rules on the latest bars now; print the new events."""
    from engine.alerts.runs import evaluate_alerts

    settings = get_settings()
    with ready_services(settings) as endpoints:
        outcome = evaluate_alerts(
            settings, endpoints.database_url, endpoints.redis_url, rules=rule, deliver=deliver
        )
    if outcome.events:
        table = Table("id", "bar", "rule", "symbol", "severity", "message", box=None)
        for event in outcome.events:
            table.add_row(
                str(event["id"]),
                str(event["ts"])[:10],
                str(event["rule"]),
                str(event["symbol"]),
                str(event["severity"]),
                str(event["message"]),
            )
        _out().print(table)
    for name, reason in outcome.skipped.items():
        console.print(f"[yellow]skipped {name}: {reason}[/]")
    delivered = outcome.delivered
    sent = (
        f"; delivered {delivered.sent}, retrying {delivered.retried}, failed {delivered.failed}"
        if delivered is not None
        else ""
    )
    console.print(
        f"evaluated {outcome.rules} rule(s) on {outcome.pairs} rule-symbol pair(s): "
        f"{len(outcome.events)} new event(s){sent}"
    )


def _backfill_frame(
    settings: Settings,
    spec: AlertRuleSpec,
    database_url: str,
    start: datetime | None,
    end: datetime | None,
) -> pl.DataFrame:
    from engine.alerts import backfill as backfill_rule
    from engine.alerts import load_alert_inputs
    from engine.io.db import connect

    with connect(database_url, timeout=settings.connect_timeout) as conn:
        inputs = load_alert_inputs(
            conn, [spec], list(settings.watchlist), start=start or _EARLIEST, end=end
        )
    return backfill_rule(spec, inputs, start=start)


def _print_firings(frame: pl.DataFrame, output_format: str) -> None:
    rows = frame.select("symbol", "ts", "severity", "message", "payload").to_dicts()
    if output_format == "json":
        records = [
            {**row, "ts": row["ts"].isoformat(), "payload": json.loads(row["payload"])}
            for row in rows
        ]
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    elif output_format == "csv":
        sys.stdout.write(frame.select("symbol", "ts", "severity", "message").write_csv())
    else:
        table = Table("date", "symbol", "severity", "message", box=None)
        for row in rows:
            table.add_row(f"{row['ts']:%Y-%m-%d}", row["symbol"], row["severity"], row["message"])
        _out().print(table)


@alerts_app.command("backfill")
def backfill(
    name: Annotated[str | None, typer.Option("--name", help="a stored rule.")] = None,
    file: RuleFile = None,
    start: Annotated[str | None, typer.Option(help="first day that may fire, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="last day evaluated, YYYY-MM-DD.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
) -> None:
    """When would a rule have fired over stored history? Prints its firing dates."""
    if output_format not in _FORMATS:
        raise ConfigError("--format must be table, json or csv")
    if (name is None) == (file is None):
        raise ConfigError("give --name (a stored rule) or --file (a rule to try)")
    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    if last is not None:
        last = last.replace(hour=23, minute=59, second=59, microsecond=999_999)
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--start {start} is after --end {end}")
    settings = get_settings()
    spec = None if file is None else _read_rule(file, settings, channels=False)
    with ready_services(settings, cache=False) as endpoints:
        if spec is None:
            from engine.io.db import connect

            assert name is not None
            with connect(endpoints.database_url, timeout=settings.connect_timeout) as conn:
                _, spec = _stored(conn, name)
        frame = _backfill_frame(settings, spec, endpoints.database_url, first, last)
    _print_firings(frame, output_format)
    symbols = frame["symbol"].n_unique()
    console.print(f"{spec.name}: {frame.height} firing(s) on {symbols} symbol(s)")
