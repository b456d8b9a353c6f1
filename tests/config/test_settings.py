"""Start-up configuration: validated, named errors, production hardening."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def _run(args, tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LUMINA_", "DATABASE"))}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", LUMINA_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LUMINA_PORT", "eighty"),
        ("LUMINA_PORT", "70000"),
        ("LUMINA_EVENT_TRANSPORT", "carrier-pigeon"),
        ("LUMINA_LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://root@localhost/lumina"),
        ("REDIS_URL", "not a url"),
        ("LUMINA_OUTBOUND_ALLOW", "ollama"),
        ("LUMINA_OUTBOUND_ALLOW", "10.0.0.1/8"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, variable, value):
    result = _run(["-c", SETUP], tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured: Invalid configuration" in result.stderr
    assert variable in result.stderr


def test_debug_is_refused_in_production(tmp_path):
    result = _run(
        ["-c", SETUP], tmp_path, LUMINA_ENV="production", DEBUG="true",
        SECRET_KEY=secrets.token_urlsafe(50),
    )  # fmt: skip
    assert result.returncode != 0
    assert "DEBUG must be off when LUMINA_ENV=production" in result.stderr


def _keyring(*versions: int) -> str:
    return ",".join(
        f"{v}:{base64.b64encode(secrets.token_bytes(32)).decode()}" for v in versions or (1,)
    )


def test_production_requires_a_secret_key(tmp_path):
    result = _run(["-c", SETUP], tmp_path, LUMINA_ENV="production", LUMINA_MASTER_KEYS=_keyring())
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_production_requires_master_keys(tmp_path):
    result = _run(
        ["-c", SETUP], tmp_path, LUMINA_ENV="production", SECRET_KEY=secrets.token_urlsafe(50)
    )
    assert result.returncode != 0
    assert "LUMINA_MASTER_KEYS is required" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("v1:abc", "entries must look like"),
        ("1:not*base64", "not valid base64"),
        ("1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        ("1:" + base64.b64encode(bytes(32)).decode() + ",1:" + base64.b64encode(bytes(32)).decode(),
         "appears twice"),
    ],
)  # fmt: skip
def test_a_malformed_keyring_stops_start_up_without_echoing_keys(tmp_path, value, message):
    result = _run(["-c", SETUP], tmp_path, LUMINA_MASTER_KEYS=value)
    assert result.returncode != 0
    assert "LUMINA_MASTER_KEYS" in result.stderr
    assert message in result.stderr
    assert value.split(":", 1)[1] not in result.stderr


def test_development_generates_and_keeps_a_private_secret_key(tmp_path):
    assert _run(["-c", SETUP], tmp_path).returncode == 0
    key_file = tmp_path / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 50
    assert key_file.stat().st_mode & 0o077 == 0
    assert _run(["-c", SETUP], tmp_path).returncode == 0
    assert key_file.read_text() == first


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        LUMINA_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        LUMINA_MASTER_KEYS=_keyring(),
        ALLOWED_HOSTS="lumina.example.com",
        CSRF_TRUSTED_ORIGINS="https://lumina.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


OUTBOUND = (
    "import django; django.setup(); from django.conf import settings; "
    "print(','.join(settings.LUMINA_OUTBOUND_ALLOW) or '-')"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "127.0.0.0/8,::1/128"),
        ({"LUMINA_OUTBOUND_ALLOW": "10.0.0.0/8, 192.168.1.20"}, "10.0.0.0/8,192.168.1.20"),
        ({"LUMINA_OUTBOUND_ALLOW": ""}, "-"),
        (
            {
                "LUMINA_ENV": "production",
                "SECRET_KEY": "x" * 50,
                "LUMINA_MASTER_KEYS": "1:" + base64.b64encode(bytes(32)).decode(),
            },
            "-",
        ),
    ],
)
def test_the_outbound_allow_list_defaults_to_loopback_only_outside_production(
    tmp_path, env, expected
):
    result = _run(["-c", OUTBOUND], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
