"""Session lifetimes, reset links and email: validated settings with documented defaults."""

import base64
import secrets

import pytest

from tests.config.test_settings import _run

SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.EMAIL_BACKEND, s.LUMINA_SESSION_IDLE_TIMEOUT, s.LUMINA_SESSION_MAX_AGE, "
    "s.SESSION_COOKIE_AGE, s.PASSWORD_RESET_TIMEOUT, s.LUMINA_PASSWORD_RESET_URL)"
)


def test_development_prints_mail_to_the_console_with_the_default_lifetimes(tmp_path):
    result = _run(["-c", SHOW], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.console.EmailBackend",
        "1800",
        "43200",
        "43200",
        "3600",
        "http://127.0.0.1:8000/accounts/password-reset/{uid}/{token}/",
    ]


def test_production_sends_mail_over_smtp_and_links_to_the_public_url(tmp_path):
    keyring = "1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    result = _run(
        ["-c", SHOW],
        tmp_path,
        LUMINA_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        LUMINA_MASTER_KEYS=keyring,
        LUMINA_PUBLIC_URL="https://lumina.example.com/",
    )
    assert result.returncode == 0, result.stderr
    backend, *_, url = result.stdout.split()
    assert backend == "django.core.mail.backends.smtp.EmailBackend"
    assert url == "https://lumina.example.com/accounts/password-reset/{uid}/{token}/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LUMINA_SESSION_IDLE_TIMEOUT", "5"),
        ("LUMINA_SESSION_MAX_AGE", "forever"),
        ("LUMINA_PASSWORD_RESET_TIMEOUT", "10"),
        ("LUMINA_EMAIL_BACKEND", "pigeon"),
    ],
)
def test_a_bad_session_or_mail_setting_stops_start_up_naming_it(tmp_path, variable, value):
    result = _run(["-c", SHOW], tmp_path, **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


def test_tls_and_ssl_for_mail_together_stop_start_up(tmp_path):
    result = _run(["-c", SHOW], tmp_path, EMAIL_USE_TLS="true", EMAIL_USE_SSL="true")
    assert result.returncode != 0
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL" in result.stderr
