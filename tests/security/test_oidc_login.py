"""OIDC login against a real OpenID Provider (node ``oidc-provider``) on loopback.

The test plays the browser (``oidc_support``).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.models.crypto import DataKey
from lumina.security.models.mfa import TotpDevice
from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.services import oidc as services
from tests.security.mfa_support import enrolled_user, error_of, event_payloads, make_user
from tests.security.oidc_support import (
    CALLBACK_PATH,
    LOGIN_PATH,
    ME,
    account,
    authorize_at_provider,
    create_provider,
    free_port,
    local,
    log_in,
    with_query,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_login_redirects_to_the_provider_with_state_nonce_and_pkce(identity_provider):
    response = APIClient().get(LOGIN_PATH)

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == identity_provider.issuer
    query = dict(parse_qsl(location.query))
    assert query["response_type"] == "code"
    assert query["client_id"] == identity_provider.client_id
    assert query["redirect_uri"] == f"http://testserver{CALLBACK_PATH}"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) >= 43
    assert len(query["state"]) >= 20
    assert len(query["nonce"]) >= 43  # 256 bits, url-safe base64


def test_a_first_login_signs_up_and_a_second_finds_the_user_by_subject(identity_provider):
    client = APIClient()
    response, _ = log_in(client, account("sub-ada", "Ada@Example.test"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "ada@example.test"
    assert body["mfa_required"] is False
    assert body["full_name"] == "Ada Lovelace"
    identity = ExternalIdentity.objects.get(provider=identity_provider, subject="sub-ada")
    assert str(identity.user_id) == body["id"]
    assert not identity.user.has_usable_password()
    assert client.get(ME).json()["id"] == body["id"]
    first = event_payloads("security.OidcLoginSucceeded")
    assert [(e["matched_by"], e["subject"]) for e in first] == [("signup", "sub-ada")]

    # The provider may report another email later: the subject is what identifies them.
    again, _ = log_in(APIClient(), account("sub-ada", "ada.new@example.test"))

    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert ExternalIdentity.objects.count() == 1
    assert event_payloads("security.OidcLoginSucceeded")[-1]["matched_by"] == "subject"
    identity.refresh_from_db()
    assert identity.last_login_at is not None


def test_a_first_login_links_an_existing_account_by_verified_email(identity_provider):
    user = make_user("grace@example.test")

    response, _ = log_in(APIClient(), account("sub-grace", "GRACE@example.test"))

    assert response.status_code == 200
    assert response.json()["id"] == str(user.pk)
    identity = ExternalIdentity.objects.get(subject="sub-grace")
    assert identity.user == user
    assert identity.email_at_link == "grace@example.test"
    assert event_payloads("security.OidcLoginSucceeded")[0]["matched_by"] == "verified_email"


def test_an_unverified_email_never_links_an_existing_account(identity_provider):
    make_user("victim@example.test")

    response, _ = log_in(APIClient(), account("sub-x", "victim@example.test", verified=False))

    error = error_of(response, 401)
    assert error["code"] == "no_linked_account"
    assert not ExternalIdentity.objects.exists()
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "account_not_linked"


def test_without_email_linking_an_existing_account_is_not_taken_over(openid_provider):
    create_provider(openid_provider, link_by_verified_email=False)
    make_user("owner@example.test")

    response, _ = log_in(APIClient(), account("sub-owner", "owner@example.test"))

    assert error_of(response, 401)["code"] == "no_linked_account"
    assert not ExternalIdentity.objects.exists()


def test_with_sign_up_closed_an_unknown_identity_is_refused(openid_provider, django_user_model):
    create_provider(openid_provider, allow_signup=False)

    response, _ = log_in(APIClient(), account("sub-new", "new@example.test"))

    assert error_of(response, 401)["code"] == "no_linked_account"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "signup_closed"
    assert not django_user_model.objects.filter(email="new@example.test").exists()


def test_sign_up_needs_a_verified_email(identity_provider, django_user_model):
    response, _ = log_in(APIClient(), account("sub-u", "unverified@example.test", verified=False))

    assert error_of(response, 401)["code"] == "no_linked_account"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "email_not_verified"
    assert not django_user_model.objects.filter(email="unverified@example.test").exists()


def test_an_inactive_user_cannot_log_in(identity_provider):
    user = make_user("gone@example.test")
    user.is_active = False
    user.save()

    response, _ = log_in(APIClient(), account("sub-gone", "gone@example.test"))

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert "_auth_user_id" not in response.wsgi_request.session


def test_a_user_with_mfa_gets_a_partially_authenticated_session(identity_provider):
    user, _ = enrolled_user("mfa@example.test")
    # Linked already (an account with MFA is never linked by email alone).
    ExternalIdentity.objects.create(provider=identity_provider, subject="sub-mfa", user=user)
    client = APIClient()

    response, _ = log_in(client, account("sub-mfa", "mfa@example.test"))

    assert response.status_code == 200
    assert response.json()["mfa_required"] is True
    assert error_of(client.get("/api/v1/auth/mfa"), 403)["code"] == "mfa_required"
    assert event_payloads("security.OidcLoginSucceeded")[0]["mfa_required"] is True
    assert TotpDevice.objects.filter(user=user).count() == 1


def test_the_callback_sends_the_browser_to_next(identity_provider):
    client = APIClient()
    start = client.get(f"{LOGIN_PATH}?next=/admin/")
    callback = authorize_at_provider(start["Location"], account("sub-n", "next@example.test"))

    response = client.get(local(callback))

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_an_offsite_next_is_refused(identity_provider):
    error = error_of(APIClient().get(f"{LOGIN_PATH}?next=https://evil.test/"), 400)
    assert "next" in error["fields"]


# --- Attacks --------------------------------------------------------------------------


def test_a_wrong_state_is_a_400(identity_provider):
    client = APIClient()
    start = client.get(LOGIN_PATH)
    callback = authorize_at_provider(start["Location"], None)

    response = client.get(local(with_query(callback, state="forged-state")))

    error = error_of(response, 400)
    assert error["code"] == "invalid_state"
    assert "state" in error["fields"]
    assert "_auth_user_id" not in client.session
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "state_mismatch"


def test_a_callback_for_a_login_started_in_another_session_is_a_400(identity_provider):
    start = APIClient().get(LOGIN_PATH)
    callback = authorize_at_provider(start["Location"], None)

    response = APIClient().get(local(callback))

    assert error_of(response, 400)["code"] == "invalid_state"


def test_a_tampered_nonce_is_rejected(identity_provider, django_user_model):
    def other_nonce(url: str) -> str:
        return with_query(url, nonce="attacker-chosen-nonce-0123456789")

    client = APIClient()
    response, _ = log_in(
        client, account("sub-t", "t@example.test"), tamper_authorization=other_nonce
    )

    error = error_of(response, 401)
    assert error["code"] == "oidc_login_failed"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "invalid_id_token:nonce"
    assert "_auth_user_id" not in client.session
    assert not django_user_model.objects.filter(email="t@example.test").exists()


def test_a_replayed_callback_is_rejected(identity_provider):
    client = APIClient()
    first, callback = log_in(client, account("sub-r", "replay@example.test"))
    assert first.status_code == 200

    assert error_of(client.get(local(callback)), 400)["code"] == "invalid_state"
    assert error_of(APIClient().get(local(callback)), 400)["code"] == "invalid_state"


def test_an_old_authorization_response_cannot_finish_a_newer_login(identity_provider):
    client = APIClient()
    old = authorize_at_provider(client.get(LOGIN_PATH)["Location"], None)
    newer = dict(parse_qsl(urlsplit(client.get(LOGIN_PATH)["Location"]).query))

    response = client.get(local(with_query(old, state=newer["state"])))

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert "_auth_user_id" not in client.session
    assert not ExternalIdentity.objects.exists()


def test_an_issuer_differing_from_the_discovery_document_is_rejected(openid_provider):
    # The same server, named differently: its discovery document says 127.0.0.1.
    create_provider(openid_provider, issuer=f"http://localhost:{openid_provider.port}")

    response = APIClient().get(LOGIN_PATH)

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "issuer_mismatch"


def test_a_changed_issuer_rejects_the_callback(identity_provider):
    client = APIClient()
    start = client.get(LOGIN_PATH)
    callback = authorize_at_provider(start["Location"], account("sub-i", "i@example.test"))
    IdentityProvider.objects.filter(pk=identity_provider.pk).update(
        issuer=f"http://localhost:{urlsplit(identity_provider.issuer).port}"
    )

    response = client.get(local(callback))

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert "_auth_user_id" not in client.session


def test_an_id_token_from_another_issuer_is_rejected(identity_provider):
    client = APIClient()
    callback = authorize_at_provider(client.get(LOGIN_PATH)["Location"], None)
    # A provider whose discovery document claims an issuer its ID tokens do not carry.
    claimed = f"http://localhost:{urlsplit(identity_provider.issuer).port}"
    real = cache.get(services.metadata_cache_key(services.discovery_url(identity_provider.issuer)))
    cache.set(
        services.metadata_cache_key(services.discovery_url(claimed)), {**real, "issuer": claimed}
    )
    IdentityProvider.objects.filter(pk=identity_provider.pk).update(issuer=claimed)
    parts = urlsplit(callback)
    without_iss = {k: v for k, v in parse_qsl(parts.query) if k != "iss"}

    response = client.get(f"{parts.path}?{urlencode(without_iss)}")

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "invalid_id_token:iss"
    assert "_auth_user_id" not in client.session


def test_an_authorization_response_naming_another_issuer_is_rejected(identity_provider):
    client = APIClient()
    callback = authorize_at_provider(client.get(LOGIN_PATH)["Location"], None)

    response = client.get(local(with_query(callback, iss="https://evil.test")))

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "issuer_mismatch"


def test_an_error_from_the_provider_is_a_401(identity_provider):
    client = APIClient()
    state = dict(parse_qsl(urlsplit(client.get(LOGIN_PATH)["Location"]).query))["state"]

    response = client.get(f"{CALLBACK_PATH}?error=access_denied&state={state}")

    assert error_of(response, 401)["code"] == "oidc_login_failed"
    assert event_payloads("security.OidcLoginFailed")[0]["reason"] == "provider_error:access_denied"


def test_a_disabled_or_unknown_provider_is_a_404(openid_provider):
    create_provider(openid_provider, enabled=False)

    assert error_of(APIClient().get(LOGIN_PATH), 404)["code"] == "not_found"
    assert error_of(APIClient().get(f"{CALLBACK_PATH}?code=x&state=y"), 404)["code"] == "not_found"
    assert error_of(APIClient().get("/api/v1/auth/oauth/nope/login"), 404)["code"] == "not_found"


def test_an_unreachable_provider_is_a_clear_error(openid_provider):
    create_provider(openid_provider, issuer=f"http://127.0.0.1:{free_port()}")

    error = error_of(APIClient().get(LOGIN_PATH), 502)

    assert error["code"] == "identity_provider_unavailable"


# --- The client secret ----------------------------------------------------------------


def test_the_client_secret_is_stored_encrypted_and_never_shown_or_logged(
    identity_provider, openid_provider, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = openid_provider.client_secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM security_identityprovider")
        rows = cursor.fetchall()
    assert rows
    assert all(secret not in str(value) for row in rows for value in row)
    assert identity_provider.client_secret_encrypted
    assert DataKey.objects.filter(owner=identity_provider.secret_owner).count() == 1

    client = APIClient()
    response, callback = log_in(client, account("sub-s", "secret@example.test"))
    assert response.status_code == 200  # the secret was decrypted for the code exchange

    answers = response.content.decode() + client.get(ME).content.decode()
    recorded = caplog.text + str(list(OutboxEvent.objects.values_list("payload", flat=True)))
    for text in (answers, recorded):
        assert secret not in text
        assert "eyJ" not in text  # no JWT (ID token) either
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    assert code not in recorded
    assert "code_verifier" not in recorded  # the PKCE secret
    decrypted = event_payloads("security.SecretDecrypted")
    assert [e["owner"] for e in decrypted] == [identity_provider.secret_owner]
