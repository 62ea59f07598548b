from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.settings import PROJECT_ROOT, Secret, Settings, load_settings, redact_url


def _load(tmp_path: Path, env_text: str | None = None, **environ: str) -> Settings:
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    return load_settings(env_file=env_file, environ=environ)


def test_defaults_work_without_any_configuration(tmp_path: Path) -> None:
    settings = _load(tmp_path)
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.state_dir == Path(".regimelab")
    assert settings.migrations_dir == PROJECT_ROOT / "prisma" / "migrations"
    assert settings.seed_sample is True


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "REGIMELAB_PORT=9000\nDATABASE_URL=postgresql://a@db/x\nREGIMELAB_SEED_SAMPLE=no\n",
        REGIMELAB_PORT="9100",
    )
    assert settings.port == 9100  # environment overrides .env
    assert settings.database_url == "postgresql://a@db/x"  # from .env
    assert settings.seed_sample is False


def test_typed_values_are_parsed(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        REGIMELAB_CORS_ORIGINS="https://a.example, https://b.example",
        REGIMELAB_CONNECT_TIMEOUT="2.5",
        REGIMELAB_STATE_DIR="/srv/regimelab",
        FRED_API_KEY="fred-secret",
    )
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.connect_timeout == 2.5
    assert settings.state_dir == Path("/srv/regimelab")
    assert settings.fred_api_key == Secret("fred-secret")
    assert settings.fred_api_key is not None and settings.fred_api_key.reveal() == "fred-secret"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REGIMELAB_PORT", "eighty", "REGIMELAB_PORT='eighty' is not valid"),
        ("REGIMELAB_PORT", "70000", "is not a TCP port"),
        ("REGIMELAB_SEED_SAMPLE", "maybe", "expected true or false"),
        ("REGIMELAB_LOG_LEVEL", "LOUD", "is not a log level"),
        ("REGIMELAB_DB_POOL_MAX", "0", "REGIMELAB_DB_POOL_MAX must be"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, **{name: value})


def test_secrets_never_show_in_repr_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _load(
        tmp_path,
        DATABASE_URL="postgresql://trader:hunter2@db.internal:5432/regimelab",
        REDIS_URL="redis://:redispass@cache:6379/0",
        REGIMELAB_SECRET_KEY="server-secret-value",
        POLYGON_API_KEY="polygon-key-value",
    )
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
    shown = repr(settings) + str(settings) + caplog.text
    for secret in ("hunter2", "redispass", "server-secret-value", "polygon-key-value"):
        assert secret not in shown
    assert "trader:********@db.internal:5432" in shown
    assert settings.secret_key is not None
    assert settings.secret_key.reveal() == "server-secret-value"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql://u:********@h:5432/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("redis://:pw@h:6379/0", "redis://:********@h:6379/0"),
        (
            "postgresql://u:p@[::1]:5432/d?sslmode=require",
            "postgresql://u:********@[::1]:5432/d?sslmode=require",
        ),
        (None, None),
    ],
)
def test_redact_url(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected


def test_env_example_documents_every_variable() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {f.metadata["env"] for f in fields(Settings)}
    assert expected <= documented, f"missing from .env.example: {sorted(expected - documented)}"
    for line in text.splitlines():  # every variable line follows a comment explaining it
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line):
            index = text.splitlines().index(line)
            assert text.splitlines()[index - 1].startswith("#"), f"no comment above {line!r}"


@pytest.mark.parametrize(
    "ignore_file", [".gitignore", ".dockerignore", ".cursorignore", ".claudeignore", ".aiexclude"]
)
def test_env_file_is_ignored_everywhere(ignore_file: str) -> None:
    lines = {line.strip() for line in (PROJECT_ROOT / ignore_file).read_text().splitlines()}
    assert ".env" in lines


def test_server_secrets_are_not_provider_credentials(tmp_path: Path) -> None:
    settings = load_settings(
        env_file=tmp_path / "absent.env",
        environ={
            "REGIMELAB_SECRET_KEY": "s" * 20,
            "REGIMELAB_SMTP_PASSWORD": "mail-password",
            "FRED_API_KEY": "fred-key",
        },
    )

    assert settings.credentials == {"FRED_API_KEY": "fred-key"}
