"""`up`, `serve`, `migrate`: run RegimeLab and keep its schema current."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from api.cli._app import (
    HostOption,
    PortOption,
    app,
    console,
    migrate_database,
)
from engine.errors import ConfigError
from engine.io.migrate import status
from engine.io.services import Endpoints, Services
from engine.settings import Settings, get_settings, redact_url


def _ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "pick another port with --port"
            ) from None


def _describe(endpoints: Endpoints) -> None:
    db_kind = "embedded" if endpoints.embedded_database else "configured"
    cache_kind = "embedded" if endpoints.embedded_cache else "configured"
    console.print(f"PostgreSQL ({db_kind}): {redact_url(endpoints.database_url)}")
    if endpoints.redis_url is not None:
        console.print(f"Redis ({cache_kind}):      {redact_url(endpoints.redis_url)}")


WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="server processes; above 1 the API runs on granian (production setting).",
    ),
]


def _prepare_workers(workers: int) -> None:
    """Before anything imports prometheus_client: metrics shared across worker processes."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="regimelab-metrics-")


def _serve_workers(
    settings: Settings, endpoints: Endpoints, host: str, port: int, workers: int
) -> None:
    """`workers` granian processes, each building the app from the environment."""
    from granian import Granian
    from granian.constants import Interfaces

    from engine.io.api_keys import server_secret

    assert endpoints.redis_url is not None
    # The workers read their settings from the environment: hand them the resolved URLs
    # and the server secret (generated in the state folder on the embedded setup).
    os.environ["REGIMELAB_SECRET_KEY"] = server_secret(settings).decode()
    os.environ["DATABASE_URL"] = endpoints.database_url
    os.environ["REDIS_URL"] = endpoints.redis_url
    Granian(
        "api.server.app:create_worker_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers,
        respawn_failed_workers=True,
        log_enabled=False,  # RegimeLab's own logging (configure_logging) covers the workers
    ).serve()


def _serve(
    settings: Settings, endpoints: Endpoints, host: str, port: int, workers: int = 1
) -> None:
    import uvicorn

    from api.lib.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    url_host = f"[{host}]" if ":" in host else host
    if workers > 1:
        console.print(
            f"RegimeLab API: [bold]http://{url_host}:{port}[/]  ({workers} granian workers; "
            "docs: /schema, Ctrl-C stops)"
        )
        _serve_workers(settings, endpoints, host, port, workers)
        return

    from api.server.app import create_app

    assert endpoints.redis_url is not None

    application = create_app(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    console.print(
        f"RegimeLab API: [bold]http://{url_host}:{port}[/]  (docs: /schema, Ctrl-C stops)"
    )
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # keep RegimeLab's logging setup
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        # uvicorn re-raises the Ctrl-C/SIGTERM it handled; after a graceful shutdown that
        # is the requested stop, not an error.
        if not (server.started and server.should_exit):
            raise
    if not server.started:
        raise ConfigError(f"the API did not start on {host}:{port} (see the log above)")


@app.command()
def up(
    port: PortOption = None,
    host: HostOption = None,
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="load the sample SPX/IXIC series once.")
    ] = True,
    workers: WorkersOption = 1,
    web: Annotated[
        bool,
        typer.Option(
            "--web/--no-web",
            help="build the dashboard when needed (Node.js) and serve it at the API's URL.",
        ),
    ] = True,
) -> None:
    """Run everything: embedded servers if no URLs are set, migrations, sample data, the API
    with its scheduler, and the dashboard at the same URL."""
    _prepare_workers(workers)
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    _ensure_port_free(host, port)
    with Services(settings) as services:
        assert services.endpoints is not None
        _describe(services.endpoints)
        migrate_database(settings, services.endpoints)
        if seed and settings.seed_sample:
            _seed(settings, services.endpoints)
            _first_regimes(settings, services.endpoints)
        if web:
            _build_dashboard(settings)
            _announce_dashboard(settings, services.endpoints, host, port)
        _serve(settings, services.endpoints, host, port, workers)
    console.print("stopped")


def _npm_ci_needed(web_dir: Path) -> bool:
    installed = web_dir / "node_modules" / ".package-lock.json"
    lock = web_dir / "package-lock.json"
    return not installed.is_file() or lock.stat().st_mtime > installed.stat().st_mtime


def _build_dashboard(settings: Settings) -> None:
    """Build web/out (npm ci + static export) when it is missing or older than its sources;
    without Node.js, say how to get it. A failed build never stops the API."""
    from api.server.web import WEB_DIR, build_needed

    if not (WEB_DIR / "package.json").is_file() or not build_needed(WEB_DIR):
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        console.print(
            "dashboard: not built, Node.js 20+ with npm is missing; install it "
            "(https://nodejs.org/en/download or `apt-get install nodejs npm`) and run "
            "`regimelab up` again. Serving the API only."
        )
        return
    steps = [("building the dashboard (next build, static export)", [npm, "run", "build:export"])]
    if _npm_ci_needed(WEB_DIR):
        steps.insert(0, ("installing the dashboard's packages (npm ci)", [npm, "ci", "--no-audit"]))
    log = settings.state_path / "logs" / "web-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REGIMELAB_WEB_EXPORT": "1", "NEXT_TELEMETRY_DISABLED": "1"}
    console.print(f"dashboard: web/out is missing or older than web/; building it (log: {log})")
    with log.open("w") as sink:
        for label, command in steps:
            started = datetime.now(UTC)
            with console.status(f"{label} …"):
                code = subprocess.call(
                    command, cwd=WEB_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT
                )
            if code != 0:
                console.print(
                    f"dashboard: {label} failed (exit {code}), see {log}; serving the API only"
                )
                return
            seconds = (datetime.now(UTC) - started).total_seconds()
            console.print(f"dashboard: {label}: done in {seconds:.0f} s")


def _dashboard_key(settings: Settings, endpoints: Endpoints) -> str:
    """The local dashboard key of this state folder: reused while it is live, else a new one
    (read, write, admin) kept in `<state>/dashboard.key`, readable by its owner only."""
    from engine.io.api_keys import create_api_key, list_api_keys, server_secret
    from engine.io.db import connect

    path = settings.state_path / "dashboard.key"
    with connect(endpoints.database_url, timeout=settings.connect_timeout) as conn:
        if path.is_file():
            key = path.read_text().strip()
            prefix = key.split("_")[1] if key.count("_") >= 2 else ""
            if any(k.prefix == prefix and k.revoked_at is None for k in list_api_keys(conn)):
                return key
        name = f"dashboard-up-{datetime.now(UTC):%Y%m%d%H%M%S}"
        _, key = create_api_key(conn, name, "read,write,admin", server_secret(settings))
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def _announce_dashboard(settings: Settings, endpoints: Endpoints, host: str, port: int) -> None:
    """Print the dashboard's URL. On the embedded setup the URL carries a local key in its
    fragment (never sent to a server), so opening it signs the browser in; else the Settings
    page asks for a key."""
    from api.server.web import WEB_OUT

    if not (WEB_OUT / "index.html").is_file():
        return
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{port}/"
    if endpoints.embedded_database and host in {"127.0.0.1", "localhost", "::1"}:
        key = _dashboard_key(settings, endpoints)
        console.print(f"RegimeLab dashboard: [bold]{url}#key={key}[/]  (signs this browser in)")
    else:
        console.print(
            f"RegimeLab dashboard: [bold]{url}[/]  (enter a key from `regimelab api-keys "
            "create` on its Settings page)"
        )


def _seed(settings: Settings, endpoints: Endpoints) -> None:
    from engine.ingest.seed import seed_sample_data

    result = seed_sample_data(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    if result is not None:
        console.print(f"seeded sample data: {result.rows_upserted} bars (SPX, IXIC)")


def _first_regimes(settings: Settings, endpoints: Endpoints) -> None:
    """Fit the default regime model on the watchlist once, so the snapshot route answers."""
    from api.domain.regimes.services import ensure_regime_run

    run_id = ensure_regime_run(settings, endpoints.database_url, endpoints.redis_url)
    if run_id is not None:
        console.print(
            f"fitted {settings.regime_model} regimes on {', '.join(settings.watchlist)} "
            f"(run {run_id})"
        )
    _first_analogs(settings, endpoints, full=run_id is not None)


def _first_analogs(settings: Settings, endpoints: Endpoints, *, full: bool) -> None:
    """Embed the stored bars as market states (all of them after a new regime fit, whose
    probabilities they hold), so the analog search answers at once."""
    from api.cli._app import invalidate_cached_reads
    from engine.analogs.service import build_states, default_spec
    from engine.io.db import connect

    with connect(endpoints.database_url, timeout=settings.connect_timeout, autocommit=True) as conn:
        report = build_states(conn, None, default_spec(settings), full=full)
    if report.states:
        invalidate_cached_reads(settings, "analogs")
        console.print(f"embedded {report.states} market states ({report.version})")


@app.command()
def serve(
    port: PortOption = None,
    host: HostOption = None,
    workers: WorkersOption = 1,
) -> None:
    """Serve the API against DATABASE_URL and REDIS_URL (containers; no embedded servers)."""
    _prepare_workers(workers)
    settings = get_settings()
    if not settings.database_url or not settings.redis_url:
        raise ConfigError(
            "`regimelab serve` needs DATABASE_URL and REDIS_URL (or use `regimelab up`)"
        )
    host = host or settings.host
    port = port or settings.port
    _ensure_port_free(host, port)
    with Services(settings) as services:
        assert services.endpoints is not None
        _serve(settings, services.endpoints, host, port, workers)


@app.command()
def migrate(
    show_status: Annotated[
        bool, typer.Option("--status", help="only show each migration's state.")
    ] = False,
) -> None:
    """Apply pending Prisma migrations (prisma/migrations) to the database."""
    settings = get_settings()
    with Services(settings, cache=False) as services:
        assert services.endpoints is not None
        if show_status:
            states = status(services.endpoints.database_url, settings.migrations_dir)
            for name, state in states.items():
                typer.echo(f"{state:9} {name}")
            return
        migrate_database(settings, services.endpoints)
