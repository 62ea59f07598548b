"""RegimeLab settings: `.env` first, then the process environment, loaded once.

Every field has a default that works on the embedded setup (no services installed).
Secrets are wrapped in :class:`Secret` and URLs with passwords are redacted in `repr`,
so printing or logging a settings object never leaks a credential.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

from engine.errors import ConfigError

__all__ = [
    "PROJECT_ROOT",
    "Secret",
    "Settings",
    "get_settings",
    "load_settings",
    "redact_url",
]

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
_REDACTED: Final = "********"


class Secret:
    """A string that never shows itself in `repr`, `str` or logs; call `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_REDACTED}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def redact_url(url: str | None) -> str | None:
    """The URL with its password (if any) replaced by asterisks."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:{_REDACTED}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _env_field(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed view of RegimeLab's environment. `.env.example` documents each variable."""

    database_url: str | None = _env_field(
        "DATABASE_URL", None, "PostgreSQL (with pgvector) URL; unset = embedded PostgreSQL 18"
    )
    redis_url: str | None = _env_field(
        "REDIS_URL", None, "Redis URL; unset = embedded Valkey (Redis protocol)"
    )
    state_dir: Path = _env_field(
        "REGIMELAB_STATE_DIR", Path(".regimelab"), "folder for embedded servers' data and logs"
    )
    host: str = _env_field("REGIMELAB_HOST", "127.0.0.1", "interface the API listens on")
    port: int = _env_field("REGIMELAB_PORT", 8000, "port the API listens on")
    log_level: str = _env_field("REGIMELAB_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")
    secret_key: Secret | None = _env_field(
        "REGIMELAB_SECRET_KEY", None, "server secret for API-key digests and webhook signatures"
    )
    db_pool_min: int = _env_field("REGIMELAB_DB_POOL_MIN", 1, "minimum pooled DB connections")
    db_pool_max: int = _env_field("REGIMELAB_DB_POOL_MAX", 10, "maximum pooled DB connections")
    connect_timeout: float = _env_field(
        "REGIMELAB_CONNECT_TIMEOUT", 5.0, "seconds to wait when connecting to Postgres or Redis"
    )
    cache_prefix: str = _env_field("REGIMELAB_CACHE_PREFIX", "regimelab", "Redis key prefix")
    migrations_dir: Path = _env_field(
        "REGIMELAB_MIGRATIONS_DIR",
        PROJECT_ROOT / "prisma" / "migrations",
        "Prisma migration folders applied by `regimelab migrate`",
    )
    seed_sample: bool = _env_field(
        "REGIMELAB_SEED_SAMPLE", True, "load the sample SPX/IXIC series on first `regimelab up`"
    )
    cors_origins: tuple[str, ...] = _env_field(
        "REGIMELAB_CORS_ORIGINS",
        ("http://localhost:3000", "http://127.0.0.1:3000"),
        "comma-separated origins allowed to call the API from a browser",
    )
    provider_base_urls: tuple[str, ...] = _env_field(
        "REGIMELAB_PROVIDER_BASE_URLS",
        (),
        "API root overrides as provider=url pairs, comma-separated (proxies, replay servers)",
    )
    provider_ttls: tuple[str, ...] = _env_field(
        "REGIMELAB_PROVIDER_TTLS",
        (),
        "cache TTL overrides as provider:dataset=seconds, comma-separated (0 = always refetch)",
    )
    strategy_modules: tuple[str, ...] = _env_field(
        "REGIMELAB_STRATEGY_MODULES",
        (),
        "comma-separated importable modules that register extra strategies (@strategy)",
    )
    ray_address: str | None = _env_field(
        "RAY_ADDRESS",
        None,
        "Ray cluster for sweeps (ray://host:10001 or host:6379); unset: local pool",
    )
    watchlist: tuple[str, ...] = _env_field(
        "REGIMELAB_WATCHLIST",
        ("SPX", "IXIC"),
        "comma-separated symbols the scheduler ingests, refits and snapshots",
    )
    regime_model: str = _env_field(
        "REGIMELAB_REGIME_MODEL", "hmm", "regime model the scheduler refits and snapshots show"
    )
    regime_states: int = _env_field(
        "REGIMELAB_REGIME_STATES", 3, "number of regimes the scheduled refit uses"
    )
    analog_window: int = _env_field(
        "REGIMELAB_ANALOG_WINDOW",
        63,
        "trailing bars a market-state embedding describes (16-252; a new window is a new "
        "embedding version)",
    )
    scheduler: bool = _env_field(
        "REGIMELAB_SCHEDULER", True, "run scheduled jobs (one leader across API replicas)"
    )
    schedules: tuple[str, ...] = _env_field(
        "REGIMELAB_SCHEDULES",
        (),
        "schedule overrides as job=trigger, comma-separated (cron '0 22 * * 1-5', 'every 15m', "
        "'off'); the job_schedules table overrides these",
    )
    leader_check_seconds: float = _env_field(
        "REGIMELAB_LEADER_CHECK_SECONDS",
        5.0,
        "how often replicas check the scheduler leader lock (failover takes at most this long)",
    )
    job_workers: int = _env_field(
        "REGIMELAB_JOB_WORKERS", 2, "processes running jobs (fits, sweeps, ingests) per replica"
    )
    job_retention_days: int = _env_field(
        "REGIMELAB_JOB_RETENTION_DAYS", 30, "days of finished job runs housekeeping keeps"
    )
    api_ttls: tuple[str, ...] = _env_field(
        "REGIMELAB_API_TTLS",
        (),
        "API response cache TTL overrides as route=seconds, comma-separated (0 = always "
        "recompute, then store)",
    )
    rate_limit_per_minute: int = _env_field(
        "REGIMELAB_RATE_LIMIT", 600, "requests per minute per API key (0 = unlimited)"
    )
    max_body_bytes: int = _env_field(
        "REGIMELAB_MAX_BODY_BYTES", 1_048_576, "largest request body the API accepts"
    )
    api_key_cache_seconds: float = _env_field(
        "REGIMELAB_API_KEY_CACHE_SECONDS",
        5.0,
        "seconds a replica trusts a verified API key before checking it again (revocation delay)",
    )
    log_format: str = _env_field(
        "REGIMELAB_LOG_FORMAT",
        "auto",
        "API log lines: json (one object per line), text, or auto (text on a terminal)",
    )
    alert_allow_private_targets: bool = _env_field(
        "REGIMELAB_ALERT_ALLOW_PRIVATE_TARGETS",
        False,
        "let alert webhooks reach loopback/private/link-local addresses (SSRF guard off)",
    )
    alert_max_attempts: int = _env_field(
        "REGIMELAB_ALERT_MAX_ATTEMPTS", 8, "delivery attempts per alert before it is failed"
    )
    smtp_host: str | None = _env_field(
        "REGIMELAB_SMTP_HOST", None, "SMTP server for email alerts; unset = email alerts fail"
    )
    smtp_port: int = _env_field("REGIMELAB_SMTP_PORT", 587, "SMTP port (465 = implicit TLS)")
    smtp_user: str | None = _env_field("REGIMELAB_SMTP_USER", None, "SMTP login user")
    smtp_password: Secret | None = _env_field(
        "REGIMELAB_SMTP_PASSWORD", None, "SMTP login password"
    )
    smtp_from: str | None = _env_field(
        "REGIMELAB_SMTP_FROM", None, "From address of email alerts (default: the SMTP user)"
    )
    smtp_starttls: bool = _env_field(
        "REGIMELAB_SMTP_STARTTLS", True, "upgrade the SMTP connection with STARTTLS"
    )
    api_url: str = _env_field(
        "REGIMELAB_API_URL",
        "http://127.0.0.1:8000",
        "URL of a running RegimeLab API, for clients (notebooks, dashboard) that call it",
    )
    api_key: Secret | None = _env_field(
        "REGIMELAB_API_KEY", None, "API key clients (notebooks) send to REGIMELAB_API_URL"
    )
    fred_api_key: Secret | None = _env_field("FRED_API_KEY", None, "FRED macro data API key")
    polygon_api_key: Secret | None = _env_field("POLYGON_API_KEY", None, "Polygon.io API key")
    alpaca_api_key_id: Secret | None = _env_field("ALPACA_API_KEY_ID", None, "Alpaca key id")
    alpaca_api_secret_key: Secret | None = _env_field(
        "ALPACA_API_SECRET_KEY", None, "Alpaca secret key"
    )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_url"):
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def credentials(self) -> dict[str, str]:
        """Configured provider credentials by environment variable name (revealed)."""
        return {
            f.metadata["env"]: value.reveal()
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), Secret) and f.name not in _SERVER_SECRETS
        }

    @property
    def base_urls(self) -> dict[str, str]:
        """Provider API root overrides by provider name."""
        return dict(_pairs(self.provider_base_urls, "=", "REGIMELAB_PROVIDER_BASE_URLS"))

    @property
    def ttl_overrides(self) -> dict[tuple[str, str], int]:
        """Cache TTL overrides by (provider, dataset)."""
        out = {}
        for key, value in _pairs(self.provider_ttls, "=", "REGIMELAB_PROVIDER_TTLS"):
            provider, _, dataset = key.partition(":")
            if not dataset or not value.isdigit():
                raise ConfigError(
                    f"REGIMELAB_PROVIDER_TTLS entry {key}={value!r} is not provider:dataset=seconds"
                )
            out[(provider, dataset)] = int(value)
        return out

    @property
    def api_ttl_overrides(self) -> dict[str, int]:
        """API response cache TTL overrides by route name."""
        out = {}
        for route, value in _pairs(self.api_ttls, "=", "REGIMELAB_API_TTLS"):
            if not value.isdigit():
                raise ConfigError(
                    f"REGIMELAB_API_TTLS entry {route}={value!r} is not route=seconds"
                )
            out[route] = int(value)
        return out

    @property
    def schedule_overrides(self) -> dict[str, str]:
        """Scheduled job triggers by job name ('off' disables a job)."""
        return dict(_pairs(self.schedules, "=", "REGIMELAB_SCHEDULES"))

    @property
    def state_path(self) -> Path:
        """Absolute state folder."""
        return self.state_dir.expanduser().resolve()


# Secrets of RegimeLab itself, never handed to market-data providers.
_SERVER_SECRETS: Final = frozenset({"secret_key", "smtp_password", "api_key"})


def _pairs(items: tuple[str, ...], sep: str, env: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip() or not value.strip():
            raise ConfigError(f"{env} entry {item!r} is not of the form key{sep}value")
        out.append((key.strip(), value.strip()))
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# Field annotations (strings, because of `from __future__ import annotations`) to parsers.
_PARSERS: Final[dict[str, Any]] = {
    "str | None": str,
    "str": str,
    "int": int,
    "float": float,
    "bool": _parse_bool,
    "Path": Path,
    "Secret | None": Secret,
    "tuple[str, ...]": _parse_csv,
}


def _parse(annotation: str, env: str, raw: str) -> Any:
    try:
        return _PARSERS[annotation](raw)
    except ValueError as exc:
        raise ConfigError(f"{env}={raw!r} is not valid: {exc}") from None


def load_settings(env_file: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from `env_file` (default `.env` in the working directory) then `environ`."""
    path = env_file or Path(os.environ.get("REGIMELAB_ENV_FILE", ".env"))
    values: dict[str, str | None] = dict(dotenv_values(path)) if path.is_file() else {}
    values.update(os.environ if environ is None else environ)
    kwargs: dict[str, Any] = {}
    for f in fields(Settings):
        env = f.metadata["env"]
        raw = values.get(env)
        if raw is None or raw == "":
            continue
        kwargs[f.name] = _parse(str(f.type), env, raw)
    settings = Settings(**kwargs)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if not 0 < settings.port < 65536:
        raise ConfigError(f"REGIMELAB_PORT={settings.port} is not a TCP port (1-65535)")
    if settings.db_pool_min < 0 or settings.db_pool_max < max(1, settings.db_pool_min):
        raise ConfigError("REGIMELAB_DB_POOL_MAX must be >= max(1, REGIMELAB_DB_POOL_MIN)")
    # malformed pairs fail at load time
    _ = settings.base_urls, settings.ttl_overrides, settings.api_ttl_overrides
    _ = settings.schedule_overrides
    if settings.leader_check_seconds <= 0:
        raise ConfigError("REGIMELAB_LEADER_CHECK_SECONDS must be > 0")
    if settings.job_workers < 1:
        raise ConfigError("REGIMELAB_JOB_WORKERS must be >= 1")
    if settings.rate_limit_per_minute < 0 or settings.max_body_bytes < 1:
        raise ConfigError("REGIMELAB_RATE_LIMIT must be >= 0 and REGIMELAB_MAX_BODY_BYTES >= 1")
    if settings.log_format not in {"auto", "json", "text"}:
        raise ConfigError(f"REGIMELAB_LOG_FORMAT={settings.log_format!r} is not auto, json or text")
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"REGIMELAB_LOG_LEVEL={settings.log_level!r} is not a log level")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
