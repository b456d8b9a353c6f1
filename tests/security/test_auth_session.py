"""/auth/me, logout, and what a partially authenticated (MFA pending) session may do."""

from __future__ import annotations

import django_otp
import pytest

from lumina.security.models.mfa import TotpDevice
from tests.security.auth_support import (
    LOGOUT,
    ME,
    PASSWORD,
    TOKENS,
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


@pytest.fixture
def ada_with_mfa(ada):
    TotpDevice.objects.create(user=ada, name="phone", confirmed=True)
    return ada


def verify_mfa(client, user) -> None:
    """What the MFA endpoint does on a right code: django_otp.login stores the device."""
    session = client.session
    session[django_otp.DEVICE_ID_SESSION_KEY] = TotpDevice.objects.get(user=user).persistent_id
    session.save()


def test_me_describes_the_session_user(ada):
    client = browser()
    login(client, "ada@example.com")
    body = client.get(ME).json()
    assert body == {
        "id": str(ada.pk),
        "email": "ada@example.com",
        "full_name": "Ada L",
        "short_name": "Ada",
        "is_staff": False,
        "is_superuser": False,
        "authenticated_by": "session",
        "token_id": None,
        "scopes": None,
        "mfa_required": False,
        "mfa_verified": False,
    }


def test_me_without_credentials_is_a_401_with_a_bearer_challenge():
    response = browser().get(ME)
    assert error_of(response, 401)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_logout_ends_the_session_and_is_audited(ada):
    client = browser()
    login(client, "ada@example.com")
    response = client.post(LOGOUT, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 204
    assert client.get(ME).status_code == 401
    (event,) = events("security.LoggedOut")
    assert event["user_id"] == str(ada.pk)


def test_logout_needs_the_csrf_token(ada):
    client = browser()
    login(client, "ada@example.com")
    error = error_of(client.post(LOGOUT), 403)
    assert "CSRF" in error["message"]
    assert client.get(ME).status_code == 200


def test_login_of_an_mfa_user_is_only_partial(ada_with_mfa):
    client = browser()
    response = login(client, "ada@example.com")
    assert response.status_code == 200
    assert response.json()["mfa_required"] is True
    (event,) = events("security.LoginSucceeded")
    assert event["mfa_required"] is True

    me = client.get(ME).json()
    assert (me["mfa_required"], me["mfa_verified"]) == (True, False)
    error = error_of(client.get(TOKENS), 403)
    assert error["code"] == "mfa_required"


def test_a_verified_mfa_session_is_fully_authenticated(ada_with_mfa):
    client = browser()
    login(client, "ada@example.com")
    verify_mfa(client, ada_with_mfa)
    assert client.get(TOKENS).status_code == 200
    me = client.get(ME).json()
    assert (me["mfa_required"], me["mfa_verified"]) == (True, True)


def test_a_partial_session_may_log_out(ada_with_mfa):
    client = browser()
    login(client, "ada@example.com")
    response = client.post(LOGOUT, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 204
    assert client.get(ME).status_code == 401


def test_a_new_password_login_drops_an_earlier_mfa_verification(ada_with_mfa):
    client = browser()
    login(client, "ada@example.com")
    verify_mfa(client, ada_with_mfa)
    login(client, "ada@example.com")
    assert client.get(ME).json()["mfa_verified"] is False
    assert client.get(TOKENS).status_code == 403


def test_an_unconfirmed_device_does_not_require_mfa(ada):
    TotpDevice.objects.create(user=ada, name="half-enrolled", confirmed=False)
    client = browser()
    assert login(client, "ada@example.com").json()["mfa_required"] is False
    assert client.get(TOKENS).status_code == 200


def test_csrf_token_endpoint_works_for_a_logged_in_browser(ada):
    client = browser()
    login(client, "ada@example.com")
    assert csrf_token(client)
