"""``crmsync serve-webhooks`` as a real subprocess: what it reads from sync.yaml, what it logs.

The receiver needs only ``webhook.*`` and the entities' ``enabled``/``activity_types`` (issue
11): no Daktela token, no mapping file. And a secret a sender puts in the URL never reaches
the access log, which is captured from the process's own output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.config import load_webhook_settings
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks import SECRET_HEADER, Inbox
from crmsync_tests.fixtures.webhooks import free_port, wait_until_healthy

SECRET = "query-string-secret-0123456789"
SYNC = """
daktela:
  instance_url: ${DAKTELA_INSTANCE_URL}
  access_token: ${DAKTELA_ACCESS_TOKEN}
  page_size: 5000             # wrong for a sync, irrelevant to the receiver
crm: {adapter: nonexistent_mod:Foo}
sync:
  entities:
    activity:
      enabled: ${ACTIVITY_ON:-true}
      direction: cc_to_crm
      mapping_file: does-not-exist.yaml
      activity_types: [call, sms]
    contact: {enabled: false, direction: crm_to_cc}
webhook: {secret: "${WEBHOOK_SECRET}", inbox_path: inbox.sqlite, max_keys: 50}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(SYNC, encoding="utf-8")
    return path


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAKTELA_", "CRMSYNC_", "WEBHOOK_"))}
    return {**env, "WEBHOOK_SECRET": SECRET, **extra}


@pytest.fixture
def receiver(config_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    command = [sys.executable, "-m", "crmsync_pipelines.cli.main", "serve-webhooks", "-c", str(config_path)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "info"],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url)
    yield proc, url
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=15)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=15)
    return output


def test_starts_without_daktela_token_or_mapping_files(
    receiver: tuple[subprocess.Popen[str], str], config_path: Path
) -> None:
    proc, url = receiver
    with httpx.Client(base_url=url, headers={SECRET_HEADER: SECRET}) as http:
        call = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c1"})
        email = http.post("/webhooks/daktela", json={"event": "email_close", "name": "e1"})
        contact = http.post("/webhooks/crm", json={"entity_type": "contact", "entity_id": "7"})
        many = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c2", "data": list(range(60))})
    output = _stop(proc)
    assert (call.status_code, call.json()["status"]) == (202, "accepted")
    assert (email.status_code, email.json()["status"]) == (202, "ignored")  # not in activity_types
    assert (contact.status_code, contact.json()["status"]) == (202, "ignored")  # contact disabled
    assert (many.status_code, many.json()["error"]) == (413, "body has more than 50 keys and list items")
    assert "Traceback" not in output
    with Inbox(config_path.parent / "inbox.sqlite") as inbox:
        assert [(e.record_id, e.status) for e in inbox.events()] == [
            ("c1", "pending"),
            ("e1", "ignored"),
            ("7", "ignored"),
        ]


def test_a_secret_in_the_query_string_never_reaches_the_access_log(
    receiver: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = receiver
    leaked_query = f"/webhooks/daktela?{SECRET_HEADER}={SECRET}&token={SECRET}"
    with httpx.Client(base_url=url) as http:
        refused = http.post(leaked_query, json={"event": "call_close", "name": "c1"})
        accepted = http.post(leaked_query, json={"event": "call_close", "name": "c2"}, headers={SECRET_HEADER: SECRET})
        health = http.get(f"/healthz?secret={SECRET}")
    output = _stop(proc)
    assert (refused.status_code, accepted.status_code, health.status_code) == (401, 202, 200)
    assert "a secret in the URL query string is never accepted" in refused.json()["error"]
    # The access lines are there, with the path only.
    assert '"POST /webhooks/daktela HTTP/1.1" 401' in output
    assert '"POST /webhooks/daktela HTTP/1.1" 202' in output
    assert '"GET /healthz HTTP/1.1" 200' in output
    assert SECRET not in output
    assert "?" not in "".join(line for line in output.splitlines() if "HTTP/1.1" in line)


def test_receiver_config_errors_name_file_and_key_without_traceback(config_path: Path) -> None:
    config_path.write_text(SYNC.replace("max_keys: 50", "max_keys: 0"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve-webhooks", "-c", str(config_path)], env=_environment())
    assert result.exit_code == 1
    assert f"Error: Configuration error: {config_path}: webhook.max_keys: 0 is out of range; allowed: 1..100000" in (
        result.output
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("replace", "with_", "path", "message"),
    [
        ("max_keys: 50", "max_depth: 65", "webhook.max_depth", "65 is out of range; allowed: 1..64"),
        ("max_keys: 50", "max_body_bytes: yes", "webhook.max_body_bytes", "expected a number, got True"),
        ("max_keys: 50", "max_string_length: -1", "webhook.max_string_length", "-1 is out of range"),
        ("activity_types: [call, sms]", "activity_types: [call, fax]", "sync.entities.activity.activity_types[1]",
         "invalid value 'fax'"),
        ("activity_types: [call, sms]", "activity_types: []", "sync.entities.activity.activity_types",
         "list at least one activity type"),
        ("enabled: ${ACTIVITY_ON:-true}", "enabled: ${ACTIVITY_ON", "sync.entities.activity.enabled",
         "unclosed placeholder"),
        ('secret: "${WEBHOOK_SECRET}"', 'secret: "${WEBHOOK_SECRET_UNSET}"', "webhook.secret",
         "environment variable WEBHOOK_SECRET_UNSET is not set"),
    ],
)
def test_load_webhook_settings_refuses_what_the_receiver_uses(
    config_path: Path, replace: str, with_: str, path: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("WEBHOOK_SECRET_UNSET", raising=False)
    monkeypatch.delenv("ACTIVITY_ON", raising=False)
    config_path.write_text(SYNC.replace(replace, with_), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_webhook_settings(config_path)
    assert info.value.path == path
    assert message in info.value.reason


def test_load_webhook_settings_reads_only_what_the_receiver_uses(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DAKTELA_ACCESS_TOKEN", "DAKTELA_INSTANCE_URL", "ACTIVITY_ON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    settings = load_webhook_settings(config_path)
    assert settings.enabled_entities == frozenset({"activity"})
    assert settings.activity_types == frozenset({"call", "sms"})
    assert settings.webhook.secret == SECRET
    assert settings.webhook.max_keys == 50
    assert settings.webhook.inbox_path == (config_path.parent / "inbox.sqlite").resolve()
    monkeypatch.setenv("ACTIVITY_ON", "false")
    assert load_webhook_settings(config_path).enabled_entities == frozenset()
