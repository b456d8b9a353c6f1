"""Items: account takeover through an identity provider, and OIDC logins that reveal
accounts or skip the lockout. Against the real OpenID provider on loopback.

The attacker controls an identity provider (or an account at one) and asserts someone
else's email as verified.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.models.rbac import Role
from lumina.security.services.oidc import PENDING_LINK_SESSION_KEY
from lumina.security.services.rbac import roles_seed_builtin
from tests.security.auth_support import steady_window
from tests.security.mfa_support import (
    PASSWORD,
    VERIFY,
    code_for,
    enrolled_user,
    error_of,
    event_payloads,
    make_user,
)
from tests.security.oidc_support import ME, account, create_provider, log_in
from tests.security.rbac_support import give_role

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

LINK = "/api/v1/auth/oauth/link"
LOGIN = "/api/v1/auth/login"
PROVIDERS = "/api/v1/auth/oauth/providers"


def _protected(kind: str):
    """An account that an identity provider's word about its email must not open."""
    if kind == "superuser":
        user = make_user("root@example.test")
        user.is_superuser = user.is_staff = True
        user.save()
        return user, None
    if kind == "staff":
        return make_user("root@example.test", staff=True), None
    return enrolled_user("root@example.test")


def _password_login(client: APIClient, email: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"email": email, "password": password}, format="json", **extra)


def _logged_in(client: APIClient) -> bool:
    return client.get(ME).status_code == 200


# --- Item: takeover by verified email ---------------------------------------------------


@pytest.mark.parametrize("kind", ["superuser", "staff", "mfa"])
def test_an_identity_provider_asserting_a_protected_accounts_email_does_not_sign_in(
    openid_provider, kind
):
    victim, _ = _protected(kind)
    create_provider(openid_provider, allow_signup=True, link_by_verified_email=True)
    attacker = APIClient()

    response, _ = log_in(attacker, account("attacker-sub", "ROOT@example.test", verified=True))

    error = error_of(response, 401)
    assert error["code"] == "no_linked_account"
    assert not _logged_in(attacker)
    assert not ExternalIdentity.objects.filter(user=victim).exists()
    (failed,) = event_payloads("security.OidcLoginFailed")
    assert failed["reason"] == "link_needs_confirmation"
    assert event_payloads("security.OidcLoginSucceeded") == []


def test_an_ordinary_account_is_still_linked_by_verified_email(identity_provider):
    """The control: the same login works for an account without staff, superuser or MFA."""
    user = make_user("plain@example.test")

    response, _ = log_in(APIClient(), account("plain-sub", "plain@example.test"))

    assert response.status_code == 200, response.content
    assert ExternalIdentity.objects.get(subject="plain-sub").user == user


def test_the_owner_of_the_account_confirms_the_link_with_their_password(openid_provider):
    root, _ = _protected("superuser")
    create_provider(openid_provider)
    browser = APIClient()
    response, _ = log_in(browser, account("root-sub", "root@example.test"))
    assert response.status_code == 401

    assert _password_login(browser, "root@example.test").status_code == 200
    pending = browser.get(LINK)
    assert pending.status_code == 200, pending.content
    assert pending.json()["email"] == "root@example.test"
    assert error_of(browser.post(LINK, {}, format="json"), 400)["fields"]["password"]

    confirmed = browser.post(LINK, {"password": PASSWORD}, format="json")

    assert confirmed.status_code == 201, confirmed.content
    assert ExternalIdentity.objects.get(subject="root-sub").user == root
    assert event_payloads("security.ExternalIdentityLinked")[0]["user_id"] == str(root.pk)
    # From now on the identity provider signs this account in (matched by subject).
    again, _ = log_in(APIClient(), account("root-sub", "root@example.test"))
    assert again.status_code == 200
    assert again.json()["id"] == str(root.pk)


def test_an_account_with_mfa_confirms_only_after_its_second_factor(openid_provider):
    user, device = _protected("mfa")
    create_provider(openid_provider)
    browser = APIClient()
    log_in(browser, account("mfa-sub", "root@example.test"))
    assert _password_login(browser, "root@example.test").status_code == 200

    partial = browser.post(LINK, {"password": PASSWORD}, format="json")

    assert error_of(partial, 403)["code"] == "mfa_required"
    assert browser.post(VERIFY, {"code": code_for(device)}, format="json").status_code == 200
    assert browser.post(LINK, {"password": PASSWORD}, format="json").status_code == 201
    assert ExternalIdentity.objects.get(subject="mfa-sub").user == user


def test_the_attacker_cannot_confirm_a_link_to_someone_else(openid_provider):
    _protected("superuser")
    make_user("attacker@example.test")
    create_provider(openid_provider)
    browser = APIClient()
    log_in(browser, account("attacker-sub", "root@example.test"))

    # Logged in as themselves, in the session holding the pending link.
    assert _password_login(browser, "attacker@example.test").status_code == 200
    refused = browser.post(LINK, {"password": PASSWORD}, format="json")

    assert error_of(refused, 400)["code"] == "link_not_allowed"
    assert not ExternalIdentity.objects.exists()
    assert event_payloads("security.ExternalIdentityLinkRefused")[0]["reason"] == ("email_mismatch")


def test_guessing_the_victims_password_at_the_confirmation_counts_towards_its_lockout(
    openid_provider, settings
):
    settings.LUMINA_LOGIN_MAX_FAILURES = 2
    root, _ = _protected("superuser")
    create_provider(openid_provider)
    browser = APIClient()
    log_in(browser, account("attacker-sub", "root@example.test"))
    browser.force_login(root)  # even with the victim's session in hand

    for _ in range(2):
        wrong = browser.post(LINK, {"password": "guess"}, format="json")
        assert error_of(wrong, 400)["code"] == "invalid_password"
    locked = browser.post(LINK, {"password": PASSWORD}, format="json")

    assert error_of(locked, 429)["code"] == "account_locked"
    assert not ExternalIdentity.objects.exists()
    root.refresh_from_db()
    assert root.locked_until is not None


def test_a_pending_link_stays_in_the_browser_that_made_it_and_expires(openid_provider):
    _protected("superuser")
    create_provider(openid_provider)
    log_in(APIClient(), account("root-sub", "root@example.test"))

    elsewhere = APIClient()
    assert _password_login(elsewhere, "root@example.test").status_code == 200
    assert error_of(elsewhere.get(LINK), 404)["code"] == "no_pending_link"

    browser = APIClient()
    log_in(browser, account("root-sub", "root@example.test"))
    _password_login(browser, "root@example.test")
    session = browser.session
    session[PENDING_LINK_SESSION_KEY]["expires_at"] = dt.datetime(2020, 1, 1).timestamp()
    session.save()
    assert error_of(browser.post(LINK, {"password": PASSWORD}, format="json"), 404)
    assert not ExternalIdentity.objects.exists()


def test_a_token_cannot_confirm_a_link(openid_provider):
    from tests.providers.gateway_support import lumina_token

    root, _ = _protected("superuser")
    bearer = f"Bearer {lumina_token(root)}"

    response = APIClient().post(LINK, {"password": PASSWORD}, HTTP_AUTHORIZATION=bearer)

    # Sessions only: a token is not even looked at here.
    assert error_of(response, 403)["code"] == "not_authenticated"


# --- Item: registering identity providers is Owner-level ---------------------------------


def _provider_body(openid_provider) -> dict:
    return {
        "slug": "evil",
        "display_name": "Evil",
        "issuer": openid_provider.issuer,
        "client_id": openid_provider.client_id,
        "client_secret": openid_provider.client_secret,
        "link_by_verified_email": True,
    }


def test_the_admin_role_may_not_register_an_identity_provider(openid_provider):
    admin = make_user("admin@example.test")
    give_role(admin, "Admin")
    client = APIClient()
    client.force_authenticate(admin)

    response = client.post(PROVIDERS, _provider_body(openid_provider), format="json")

    assert error_of(response, 403)["code"] == "permission_denied"
    assert not IdentityProvider.objects.exists()
    owner = make_user("owner@example.test")
    give_role(owner, "Owner")
    client.force_authenticate(owner)
    assert client.post(PROVIDERS, _provider_body(openid_provider), format="json").status_code == (
        201
    )


def test_migrating_takes_the_permission_from_an_existing_admin_role():
    """What ``migrate`` does to a database whose Admin role still holds it (post_migrate)."""
    admin_role = Role.objects.get(name="Admin")
    admin_role.permissions = [*admin_role.permissions, "security.identity_providers.manage"]
    admin_role.save()

    roles_seed_builtin()

    admin_role.refresh_from_db()
    assert "security.identity_providers.manage" not in admin_role.permissions
    assert Role.objects.get(name="Owner").permissions == ["*"]


# --- Item: OIDC logins reveal no account, and obey the lockout and throttles -----------


def _visible(response) -> tuple:
    """Everything a client sees of an answer, but the request id."""
    headers = {k: v for k, v in response.items() if k.lower() != "x-request-id"}
    return response.status_code, response.content, headers, sorted(response.cookies)


@pytest.mark.parametrize(
    ("provider_settings", "verified"),
    [
        ({"allow_signup": False, "link_by_verified_email": False}, True),
        ({"allow_signup": True, "link_by_verified_email": True}, False),  # unverified email
        ({"allow_signup": False, "link_by_verified_email": True}, True),  # protected account
    ],
)
def test_an_answer_never_tells_whether_an_account_has_the_email(
    openid_provider, provider_settings, verified
):
    _protected("superuser")
    create_provider(openid_provider, **provider_settings)

    existing, _ = log_in(APIClient(), account("sub-1", "root@example.test", verified=verified))
    unknown, _ = log_in(APIClient(), account("sub-2", "nobody@example.test", verified=verified))

    assert existing.status_code == 401  # neither logged in: the comparison below means something
    assert _visible(existing) == _visible(unknown)
    reasons = [e["reason"] for e in event_payloads("security.OidcLoginFailed")]
    assert reasons[0] != reasons[1]  # the audit log does tell them apart


def test_a_locked_account_cannot_log_in_through_its_identity_provider(identity_provider, settings):
    settings.LUMINA_LOGIN_MAX_FAILURES = 3
    user = make_user("ada@example.test")
    ExternalIdentity.objects.create(provider=identity_provider, subject="ada-sub", user=user)
    assert log_in(APIClient(), account("ada-sub", "ada@example.test"))[0].status_code == 200

    for _ in range(3):
        assert _password_login(APIClient(), "ada@example.test", "wrong").status_code == 401
    browser = APIClient()
    response, _ = log_in(browser, account("ada-sub", "ada@example.test"))

    assert error_of(response, 429)["code"] == "account_locked"
    assert int(response["Retry-After"]) > 0
    assert not _logged_in(browser)
    assert event_payloads("security.OidcLoginFailed")[-1]["reason"] == "account_locked"


def test_oidc_callbacks_share_the_per_address_limit_with_password_logins(
    identity_provider, settings
):
    settings.REST_FRAMEWORK = {
        **django_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "3/min", "mfa": "3/min"},
    }
    address = {"REMOTE_ADDR": "198.51.100.30"}
    steady_window()
    for _ in range(2):
        _password_login(APIClient(), "nobody@example.test", "guess", **address)
    first = APIClient()
    first.defaults.update(address)
    second = APIClient()
    second.defaults.update(address)

    ok, _ = log_in(first, account("sub-t", "t@example.test"))
    throttled, _ = log_in(second, account("sub-t", "t@example.test"))

    assert ok.status_code == 200, ok.content
    assert error_of(throttled, 429)["code"] == "throttled"
    assert not _logged_in(second)
