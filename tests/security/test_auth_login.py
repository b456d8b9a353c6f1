"""Session login for the web console: CSRF, credentials, no account enumeration, events."""

from __future__ import annotations

from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

from tests.security.auth_support import (
    CSRF,
    LOGIN,
    ME,
    PASSWORD,
    browser,
    csrf_token,
    error_of,
    events,
    login,
    reset_caches,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", PASSWORD, full_name="Ada L")


def test_csrf_endpoint_sets_the_cookie_and_returns_its_token():
    client = browser()
    response = client.get(CSRF)
    assert response.status_code == 200
    token = response.json()["csrf_token"]
    assert token
    assert settings.CSRF_COOKIE_NAME in response.cookies


def test_login_with_the_right_password_starts_a_session(ada):
    client = browser()
    response = login(client, "ada@example.com")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(ada.pk)
    assert body["email"] == "ada@example.com"
    assert body["authenticated_by"] == "session"
    assert body["mfa_required"] is False
    assert settings.SESSION_COOKIE_NAME in response.cookies

    me = client.get(ME)
    assert me.status_code == 200
    assert me.json()["id"] == str(ada.pk)


def test_login_email_is_case_insensitive(ada):
    assert login(browser(), "ADA@Example.com").status_code == 200


def test_login_publishes_login_succeeded_without_the_password(ada):
    login(browser(), "ada@example.com", REMOTE_ADDR="198.51.100.7")
    (event,) = events("security.LoginSucceeded")
    assert event["user_id"] == str(ada.pk)
    assert event["actor_id"] == str(ada.pk)
    assert event["ip_address"] == "198.51.100.7"
    assert event["outcome"] == "success"
    assert PASSWORD not in str(event)


def test_login_without_a_csrf_token_is_refused(ada):
    client = browser()
    client.get(CSRF)  # the cookie alone is not enough: the header must repeat it
    response = client.post(LOGIN, {"email": "ada@example.com", "password": PASSWORD}, format="json")
    error = error_of(response, 403)
    assert error["code"] == "csrf_failed"
    assert client.get(ME).status_code == 401
    assert events("security.LoginSucceeded") == []


def test_login_with_a_forged_csrf_token_is_refused(ada):
    client = browser()
    client.get(CSRF)
    response = client.post(
        LOGIN,
        {"email": "ada@example.com", "password": PASSWORD},
        format="json",
        HTTP_X_CSRFTOKEN="x" * 64,
    )
    assert error_of(response, 403)["code"] == "csrf_failed"


def test_wrong_password_and_unknown_email_get_the_same_error(ada):
    wrong = error_of(login(browser(), "ada@example.com", "not the password"), 401)
    unknown = error_of(login(browser(), "nobody@example.com", "not the password"), 401)
    assert wrong == unknown
    assert wrong["code"] == "invalid_credentials"
    assert wrong["message"] == "Invalid email or password."


def test_failed_logins_publish_login_failed_without_the_password(ada):
    login(browser(), "ada@example.com", "wrong password 1")
    login(browser(), "nobody@example.com", "wrong password 2")
    known, unknown = events("security.LoginFailed")
    assert known["user_id"] == str(ada.pk)
    assert unknown["user_id"] is None
    assert unknown["email"] == "nobody@example.com"
    assert {known["outcome"], unknown["outcome"]} == {"failure"}
    assert "wrong password" not in str(known) + str(unknown)


def test_unknown_email_still_runs_the_password_hasher(ada):
    """Same work, so similar timing, whether or not the account exists."""
    original = Argon2PasswordHasher.verify
    with mock.patch.object(
        Argon2PasswordHasher, "verify", autospec=True, side_effect=original
    ) as verify:
        login(browser(), "nobody@example.com", "some password")
        assert verify.call_count == 1
        login(browser(), "ada@example.com", "some password")
        assert verify.call_count == 2


def test_inactive_users_get_the_generic_error_even_with_the_right_password(ada):
    ada.is_active = False
    ada.save()
    error = error_of(login(browser(), "ada@example.com"), 401)
    assert error["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "ada@example.com"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "ada@example.com", "password": "x" * 5000}, "password"),
        ({"email": ["ada@example.com"], "password": PASSWORD}, "email"),
    ],
)
def test_bad_login_input_is_a_400_naming_the_field(ada, payload, field):
    client = browser()
    token = csrf_token(client)
    response = client.post(LOGIN, payload, format="json", HTTP_X_CSRFTOKEN=token)
    error = error_of(response, 400)
    assert field in error["fields"]
    assert PASSWORD not in response.content.decode()


def test_login_replaces_the_session_key(ada):
    """No session fixation: the session id chosen before login does not survive it."""
    client = browser()
    client.get(CSRF)
    client.session.save()
    before = client.session.session_key
    login(client, "ada@example.com")
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != before


def test_login_ignores_a_bearer_header():
    """The login endpoint authenticates by password only; a bad token does not block it."""
    response = browser().post(
        LOGIN,
        {"email": "x@example.com", "password": "y"},
        format="json",
        HTTP_AUTHORIZATION="Bearer nonsense",
    )
    assert error_of(response, 403)["code"] == "csrf_failed"
