"""Lockout after consecutive failures, per-address throttling, and the reusable guard."""

from __future__ import annotations

import time
import uuid
from io import StringIO

import pytest
import redis
from django.core.cache import cache
from django.core.management import call_command
from django.test.utils import override_settings
from django.utils import timezone

from lumina.security.services.auth import AccountLockedError, account_unlock, attempt_guard
from lumina.security.types import Actor
from tests.conftest import require_service
from tests.security.auth_support import (
    LOGIN,
    PASSWORD,
    browser,
    csrf_token,
    error_of,
    events,
    login,
    reset_caches,
    steady_window,
)

pytestmark = pytest.mark.django_db

MAX_FAILURES = 3
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LUMINA_LOGIN_MAX_FAILURES = MAX_FAILURES
    settings.LUMINA_LOGIN_LOCKOUT_SECONDS = 600
    reset_caches()
    yield
    reset_caches()


@pytest.fixture(params=["locmem", "redis"])
def shared_cache(request):
    """Run against the local cache and against Redis, as deployments with REDIS_URL do."""
    if request.param != "redis":
        yield request.param
        cache.clear()
        return
    require_service("127.0.0.1", 6379, "Redis")
    prefix = f"test-auth-{uuid.uuid4().hex}"
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": prefix,
    }
    # Restored before the other fixtures' cache.clear(), which would empty the whole Redis
    # database under concurrent runs: only this test's keys are deleted.
    with override_settings(CACHES={"default": redis_cache}):
        yield request.param
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", PASSWORD)


def fail(times: int, email: str = "ada@example.com", **extra) -> None:
    for _ in range(times):
        assert login(browser(), email, "wrong password", **extra).status_code == 401


def test_account_locks_after_max_failures_even_for_the_right_password(ada, shared_cache):
    fail(MAX_FAILURES)
    response = login(browser(), "ada@example.com", PASSWORD)
    error = error_of(response, 429)
    assert error["code"] == "account_locked"
    assert 590 <= int(response["Retry-After"]) <= 600
    ada.refresh_from_db()
    assert ada.locked_until > timezone.now()


def test_lockout_publishes_account_locked_once(ada):
    fail(MAX_FAILURES, REMOTE_ADDR="203.0.113.9")
    login(browser(), "ada@example.com", PASSWORD)
    login(browser(), "ada@example.com", PASSWORD)
    (locked,) = events("security.AccountLocked")
    assert locked["user_id"] == str(ada.pk)
    assert locked["failures"] == MAX_FAILURES
    assert locked["ip_address"] == "203.0.113.9"
    assert locked["outcome"] == "denied"
    refused = [e for e in events("security.LoginFailed") if e["reason"] == "account_locked"]
    assert len(refused) == 2
    assert all(e["outcome"] == "denied" for e in refused)


def test_unknown_email_locks_exactly_like_a_real_account(ada):
    """Otherwise counting attempts until a 429 would reveal which accounts exist."""
    fail(MAX_FAILURES, "ghost@example.com")
    ghost = error_of(login(browser(), "ghost@example.com", PASSWORD), 429)
    fail(MAX_FAILURES)
    real = error_of(login(browser(), "ada@example.com", PASSWORD), 429)
    assert ghost == real


def test_a_success_resets_the_failure_count(ada, shared_cache):
    fail(MAX_FAILURES - 1)
    assert login(browser(), "ada@example.com").status_code == 200
    fail(MAX_FAILURES - 1)
    assert login(browser(), "ada@example.com").status_code == 200
    assert events("security.AccountLocked") == []


def test_the_lock_ends_after_the_lockout_period(ada, settings):
    settings.LUMINA_LOGIN_LOCKOUT_SECONDS = 1
    fail(MAX_FAILURES)
    assert login(browser(), "ada@example.com").status_code == 429
    time.sleep(1.1)
    assert login(browser(), "ada@example.com").status_code == 200
    ada.refresh_from_db()
    assert ada.locked_until is None


def test_the_lock_survives_a_cache_flush(ada):
    fail(MAX_FAILURES)
    cache.clear()
    assert error_of(login(browser(), "ada@example.com"), 429)["code"] == "account_locked"


def test_account_unlock_lifts_the_lock(ada, admin_user):
    fail(MAX_FAILURES)
    account_unlock(user_id=ada.pk, actor=Actor(user_id=admin_user.pk, is_superuser=True))
    assert login(browser(), "ada@example.com").status_code == 200
    (unlocked,) = events("security.AccountUnlocked")
    assert unlocked["actor_id"] == str(admin_user.pk)


def test_cli_user_unlock_lifts_the_lock(ada):
    fail(MAX_FAILURES)
    out = StringIO()
    call_command("security", "user", "unlock", "ada@example.com", stdout=out)
    assert "unlocked ada@example.com" in out.getvalue()
    assert login(browser(), "ada@example.com").status_code == 200


def test_mfa_failures_counted_by_the_guard_lock_the_account_for_login_too(ada):
    guard = attempt_guard(scope="mfa", email=ada.email, user=ada, ip_address="192.0.2.1")
    for _ in range(MAX_FAILURES):
        guard.check()
        guard.record_failure()
    with pytest.raises(AccountLockedError) as refused:
        guard.check()
    assert refused.value.retry_after > 0
    assert login(browser(), "ada@example.com").status_code == 429
    (locked,) = events("security.AccountLocked")
    assert locked["scope"] == "mfa"


def test_a_correct_password_does_not_reset_counted_mfa_failures(ada):
    """Otherwise re-entering the password would give an attacker endless code guesses."""
    guard = attempt_guard(scope="mfa", email=ada.email, user=ada, ip_address=None)
    for _ in range(MAX_FAILURES - 1):
        guard.record_failure()
    assert login(browser(), "ada@example.com").status_code == 200
    assert guard.record_failure() is True


def test_per_address_throttle_answers_429_with_retry_after(ada, settings, shared_cache):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "3/min", "mfa": "3/min"},
    }
    address = {"REMOTE_ADDR": "198.51.100.20"}
    steady_window()
    for _ in range(3):
        login(browser(), "someone@example.com", "guess", **address)
    response = login(browser(), "ada@example.com", PASSWORD, **address)
    error = error_of(response, 429)
    assert error["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another address is counted on its own.
    assert login(browser(), "ada@example.com", REMOTE_ADDR="198.51.100.21").status_code == 200
    (throttled,) = events("security.AddressThrottled")
    assert throttled["ip_address"] == "198.51.100.20"
    assert throttled["scope"] == "login"


def test_throttled_requests_do_not_reach_the_password_check(ada, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "1/min"},
    }
    steady_window()
    login(browser(), "ada@example.com", "wrong password")
    client = browser()
    token = csrf_token(client)
    client.post(
        LOGIN, {"email": "ada@example.com", "password": "x"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert len(events("security.LoginFailed")) == 1


def test_an_ipv6_client_is_counted_by_its_64_prefix(ada, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "2/min"},
    }
    for host in ("2001:db8:1:2::a", "2001:db8:1:2::b"):
        login(browser(), "someone@example.com", "guess", REMOTE_ADDR=host)
    rotated = login(browser(), "ada@example.com", REMOTE_ADDR="2001:db8:1:2:ffff::1")
    assert error_of(rotated, 429)["code"] == "throttled"
    assert login(browser(), "ada@example.com", REMOTE_ADDR="2001:db8:1:3::1").status_code == 200
