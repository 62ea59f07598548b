"""Calls to a running API: the curl text, the request sent, the reply read."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pytest_httpserver import HTTPServer

from engine.io.api_client import api_call, send
from engine.settings import load_settings


def test_curl_names_the_key_variable_not_a_secret() -> None:
    call = api_call("http://127.0.0.1:8000/", "/api/v1/alerts/rules", {"name": "it's"})
    assert call.url == "http://127.0.0.1:8000/api/v1/alerts/rules"
    command = call.curl()
    assert '"X-API-Key: $REGIMELAB_API_KEY"' in command
    body = shlex.split(command.replace("\\\n", " "))[-1]
    assert json.loads(body) == {"name": "it's"}
    assert json.loads(call.body) == {"name": "it's"}


def test_send_posts_json_with_the_key(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/v1/alerts/rules",
        method="POST",
        headers={"X-API-Key": "rl_secret"},
        json={"name": "r"},
    ).respond_with_json({"id": 3, "name": "r"}, status=201)
    reply = send(
        api_call(httpserver.url_for("/"), "/api/v1/alerts/rules", {"name": "r"}), "rl_secret"
    )
    assert reply.ok
    assert reply.body == {"id": 3, "name": "r"}


def test_a_problem_detail_is_the_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/alerts/rules").respond_with_json(
        {"title": "Bad Request", "detail": "condition.value: must be finite"}, status=400
    )
    reply = send(api_call(httpserver.url_for("/"), "/api/v1/alerts/rules", {}), "k")
    assert not reply.ok
    assert reply.detail == "400: condition.value: must be finite"


def test_an_unreachable_api_is_status_zero() -> None:
    reply = send(api_call("http://127.0.0.1:9", "/x", {}), "k", timeout=2)
    assert reply.status == 0
    assert "cannot reach" in reply.detail


def test_the_api_key_setting_is_a_secret_kept_from_providers(tmp_path: Path) -> None:
    settings = load_settings(
        env_file=tmp_path / "absent.env",
        environ={"REGIMELAB_API_KEY": "rl_secret", "REGIMELAB_API_URL": "http://api:8000"},
    )
    assert settings.api_key is not None and settings.api_key.reveal() == "rl_secret"
    assert settings.api_url == "http://api:8000"
    assert "rl_secret" not in repr(settings)
    assert "REGIMELAB_API_KEY" not in settings.credentials
    assert load_settings(env_file=tmp_path / "absent.env", environ={}).api_key is None
