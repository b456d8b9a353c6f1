"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

# Set by .ci/run: a test that needs Redis, RabbitMQ or another local service fails, rather
# than skips, when the service is missing, so CI never passes without testing it.
REQUIRE_SERVICES = os.environ.get("LUMINA_REQUIRE_SERVICES", "") not in ("", "0")


def service_unavailable(reason: str) -> NoReturn:
    """Skip a test whose service is missing, or fail it under ``LUMINA_REQUIRE_SERVICES``."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (LUMINA_REQUIRE_SERVICES is set: service-backed tests must run)")
    pytest.skip(reason)


def require_service(host: str, port: int, name: str) -> None:
    """Go on only if ``name`` answers on ``host:port`` (see ``service_unavailable``)."""
    if not reachable(host, port):
        service_unavailable(f"{name} is not reachable on {host}:{port}; start it to run this")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``LUMINA_REQUIRE_SERVICES`` no test may skip, except those marked
    ``optional_extra`` (they need an optional install, not a service)."""
    report = yield
    if REQUIRE_SERVICES and report.skipped and not item.get_closest_marker("optional_extra"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped while LUMINA_REQUIRE_SERVICES is set: {reason}"
    return report


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix) -> None:
    """LUMINA_TEST_DB_SUFFIX gives concurrent test runs on one server their own database."""
    from django.conf import settings

    suffix = os.environ.get("LUMINA_TEST_DB_SUFFIX")
    if suffix:
        # Every alias (the audit chain's connection too) reaches the same test database;
        # each pytest-xdist worker (gw0, gw1, …) has its own.
        worker = getattr(request.config, "workerinput", {}).get("workerid")
        name = "_".join(
            filter(None, ("test", settings.DATABASES["default"]["NAME"], suffix, worker))
        )
        for database in settings.DATABASES.values():
            database.setdefault("TEST", {})["NAME"] = name


_DB_FIXTURES = frozenset({"db", "transactional_db", "live_server", "django_db_reset_sequences"})


def pytest_collection_modifyitems(items) -> None:
    """Database tests may use every alias: security events reach the audit chain through
    its own connection (alias ``audit``). A test naming its databases keeps its choice."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None and not _DB_FIXTURES & set(item.fixturenames):
            continue
        kwargs = dict(marker.kwargs) if marker is not None else {}
        if "databases" in kwargs:
            continue
        args = marker.args if marker is not None else ()
        item.add_marker(pytest.mark.django_db(*args, **kwargs, databases="__all__"), append=False)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> None:
    """Let transactional tests' teardown flush (TRUNCATE) the append-only audit table.

    Only the TRUNCATE trigger is disabled, and only in the test database: UPDATE and
    DELETE stay refused, which the audit tests rely on.
    """
    from django.db import connection

    from lumina.security.audit_sql import AUDIT_TABLE, AUDIT_TRUNCATE_TRIGGER

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", [AUDIT_TRUNCATE_TRIGGER])
        if cursor.fetchone():
            cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {AUDIT_TRUNCATE_TRIGGER}")


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes():
    """Argon2 at its lowest cost (tests/hashers.py); servers that tests start as
    subprocesses keep the configured hashers and verify these hashes all the same."""
    from django.test.utils import override_settings

    hashers = [
        "tests.hashers.CheapArgon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(scope="session", autouse=True)
def _audit_heads_in_a_temporary_file(tmp_path_factory) -> None:
    """Periodic head exports (relay threads in tests) stay out of the data directory."""
    from django.conf import settings

    settings.LUMINA_AUDIT_HEAD_FILE = tmp_path_factory.mktemp("audit") / "audit-heads.jsonl"


@pytest.fixture(autouse=True)
def _fresh_authorization_caches():
    """State of a rolled-back test must not linger in caches: roles, policies, counters."""
    from django.core.cache import cache

    from lumina.security.services.authorization import cache_clear
    from lumina.security.services.token_refusals import refusals_clear
    from lumina.security.services.tokens import token_cache_clear

    cache.clear()  # throttle and lockout counters too
    cache_clear()
    token_cache_clear()
    refusals_clear()
    yield
    cache_clear()
    token_cache_clear()
    refusals_clear()


@pytest.fixture(autouse=True)
def _loopback_destinations_allowed(settings):
    """Test upstreams and identity providers listen on 127.0.0.1, so tests allow loopback
    explicitly; the outbound-guard attack tests set an empty list instead."""
    settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.0/8", "::1/128")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root@example.com", "correct horse 42")


@pytest.fixture
def admin_client(api_client, admin_user) -> APIClient:
    api_client.force_authenticate(admin_user)
    return api_client


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def database_url_for_subprocess() -> str:
    """A DATABASE_URL that reaches the test database, for worker/server subprocesses."""
    from django.db import connection

    params = connection.get_connection_params()
    host = params.get("host") or "127.0.0.1"
    host_part = quote(host, safe="") if host.startswith("/") else host
    port = f":{params['port']}" if params.get("port") else ""
    user = params.get("user") or "postgres"
    password = f":{quote(params['password'], safe='')}" if params.get("password") else ""
    return f"postgresql://{user}{password}@{host_part}{port}/{params['dbname']}"


@pytest.fixture(autouse=True)
def _usage_ledger_in_the_foreground(settings):
    """No background usage writer in any test: a test's usage is written by its own
    ``usage_flush()`` (inside its transaction), and what it leaves buffered is dropped, not
    written into the next test. A writer thread inserting while a transactional test's
    teardown truncates the tables deadlocks the two."""
    from lumina.providers.services import usage

    settings.LUMINA_USAGE_WRITER_THREAD = False
    usage.usage_writer_stop(flush=False)
    yield
    usage._buffer.clear()
    usage._events.clear()


@pytest.fixture(scope="session", autouse=True)
def _no_usage_writer_after_the_session(django_db_setup, django_db_blocker):
    """A test that served a completion leaves usage buffered: write it while the test
    database still exists, rather than at interpreter exit after it is gone."""
    yield
    from lumina.providers.services.usage import usage_writer_stop

    with django_db_blocker.unblock():
        usage_writer_stop(flush=True)
