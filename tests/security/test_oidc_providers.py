"""Managing identity providers: REST for administrators and the admin console; secret write-only."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.security.models.crypto import DataKey
from lumina.security.models.oidc import IdentityProvider
from lumina.security.services.crypto import secret_decrypt
from lumina.security.types import Actor
from tests.security.mfa_support import error_of, event_payloads, make_user, session_client

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/auth/oauth/providers"
SECRET = "s3cret-client-Value-that-must-never-show"


def _body(**overrides) -> dict:
    return {
        "slug": "corp",
        "display_name": "Corp SSO",
        "issuer": "https://sso.example.test/realms/corp",
        "client_id": "lumina",
        "client_secret": SECRET,
        **overrides,
    }


def _stored_secret(provider: IdentityProvider) -> str:
    return secret_decrypt(
        ciphertext=provider.client_secret_encrypted,
        owner=provider.secret_owner,
        actor=Actor.system("security"),
    )


def _row_values() -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM security_identityprovider")
        return [value for row in cursor.fetchall() for value in row]


def test_an_admin_adds_a_provider_and_the_secret_is_only_stored_encrypted(
    admin_client, admin_user, caplog
):
    caplog.set_level(logging.DEBUG)
    response = admin_client.post(PROVIDERS, _body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert "client_secret" not in body
    assert body["has_client_secret"] is True
    assert body["login_url"] == "/api/v1/auth/oauth/corp/login"
    assert body["scopes"] == "openid email profile"
    assert body["allow_signup"] is False
    assert body["link_by_verified_email"] is False
    provider = IdentityProvider.objects.get(slug="corp")
    assert _stored_secret(provider) == SECRET
    assert all(SECRET not in str(value) for value in _row_values())
    assert SECRET not in caplog.text
    payloads = str(list(OutboxEvent.objects.values_list("payload", flat=True)))
    assert SECRET not in payloads
    created = event_payloads("security.IdentityProviderCreated")
    assert [(e["slug"], e["actor_id"]) for e in created] == [("corp", str(admin_user.pk))]

    for answer in (admin_client.get(PROVIDERS), admin_client.get(f"{PROVIDERS}/{provider.pk}")):
        assert answer.status_code == 200
        assert SECRET not in answer.content.decode()
        assert provider.client_secret_encrypted not in answer.content.decode()


def test_changing_the_secret_replaces_it_and_shreds_the_old_one(admin_client):
    provider_id = admin_client.post(PROVIDERS, _body(), format="json").json()["id"]
    old_ciphertext = IdentityProvider.objects.get(pk=provider_id).client_secret_encrypted

    response = admin_client.patch(
        f"{PROVIDERS}/{provider_id}",
        {"client_secret": "a-new-secret", "enabled": False},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert "a-new-secret" not in response.content.decode()
    provider = IdentityProvider.objects.get(pk=provider_id)
    assert _stored_secret(provider) == "a-new-secret"
    assert provider.client_secret_encrypted != old_ciphertext
    assert DataKey.objects.filter(owner=provider.secret_owner).count() == 1
    updated = event_payloads("security.IdentityProviderUpdated")
    assert sorted(updated[0]["changed"]) == ["client_secret", "enabled"]


def test_a_change_without_a_secret_keeps_the_stored_one(admin_client):
    provider_id = admin_client.post(PROVIDERS, _body(), format="json").json()["id"]

    response = admin_client.patch(
        f"{PROVIDERS}/{provider_id}", {"display_name": "Corporate"}, format="json"
    )

    assert response.json()["display_name"] == "Corporate"
    assert _stored_secret(IdentityProvider.objects.get(pk=provider_id)) == SECRET


def test_deleting_a_provider_shreds_its_secret(admin_client):
    provider_id = admin_client.post(PROVIDERS, _body(), format="json").json()["id"]
    owner = IdentityProvider.objects.get(pk=provider_id).secret_owner

    assert admin_client.delete(f"{PROVIDERS}/{provider_id}").status_code == 204

    assert not IdentityProvider.objects.exists()
    assert not DataKey.objects.filter(owner=owner).exists()
    assert event_payloads("security.IdentityProviderDeleted")[0]["slug"] == "corp"
    assert error_of(admin_client.get(f"{PROVIDERS}/{provider_id}"), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"issuer": "not a url"}, "issuer"),
        ({"issuer": "ftp://sso.example.test"}, "issuer"),
        ({"issuer": "https://sso.example.test/?tenant=1"}, "issuer"),
        ({"scopes": "email profile"}, "scopes"),
        ({"slug": "has spaces"}, "slug"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_id": ""}, "client_id"),
        ({"enabled": "sometimes"}, "enabled"),
    ],
)
def test_bad_provider_settings_are_a_400_naming_the_field(admin_client, overrides, field):
    response = admin_client.post(PROVIDERS, _body(**overrides), format="json")

    error = error_of(response, 400)
    assert field in error["fields"]
    assert SECRET not in response.content.decode()
    assert not IdentityProvider.objects.exists()


def test_a_missing_secret_is_a_400_naming_it(admin_client):
    body = _body()
    del body["client_secret"]
    assert (
        "client_secret"
        in error_of(admin_client.post(PROVIDERS, body, format="json"), 400)["fields"]
    )


def test_a_duplicate_slug_is_a_400_naming_slug(admin_client):
    admin_client.post(PROVIDERS, _body(), format="json")
    error = error_of(admin_client.post(PROVIDERS, _body(), format="json"), 400)
    assert "slug" in error["fields"]


def test_plain_http_issuers_are_refused_in_production(admin_client, settings):
    settings.LUMINA_ENV = "production"
    error = error_of(
        admin_client.post(PROVIDERS, _body(issuer="http://sso.example.test"), format="json"), 400
    )
    assert error["fields"]["issuer"] == ["must use https"]
    response = admin_client.post(PROVIDERS, _body(issuer="http://127.0.0.1:9000"), format="json")
    assert response.status_code == 201


def test_people_without_the_permission_cannot_manage_providers():
    user = make_user("someone@example.com")
    client = session_client(user)

    assert error_of(client.get(PROVIDERS), 403)["code"] == "permission_denied"
    assert error_of(client.post(PROVIDERS, _body(), format="json"), 403)["code"] == (
        "permission_denied"
    )
    assert not IdentityProvider.objects.exists()
    denied = event_payloads("security.AccessDenied")
    assert {e["action"] for e in denied} == {"security.identity_providers.manage"}
    assert error_of(APIClient().get(PROVIDERS), 401)["code"] == "not_authenticated"


# --- Admin console ----------------------------------------------------------------------


def test_the_admin_console_adds_a_provider_with_a_write_only_secret(admin_user):
    client = Client()
    client.force_login(admin_user)
    form = {**_body(), "scopes": "openid email profile", "enabled": "on"}

    response = client.post("/admin/security/identityprovider/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    provider = IdentityProvider.objects.get(slug="corp")
    assert _stored_secret(provider) == SECRET
    change = client.get(f"/admin/security/identityprovider/{provider.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert SECRET not in html
    assert provider.client_secret_encrypted not in html

    edit = {**form, "display_name": "Renamed", "client_secret": ""}
    del edit["slug"]
    saved = client.post(f"/admin/security/identityprovider/{provider.pk}/change/", edit)
    assert saved.status_code == 302
    provider.refresh_from_db()
    assert provider.display_name == "Renamed"
    assert _stored_secret(provider) == SECRET


def test_the_admin_console_needs_a_secret_for_a_new_provider(admin_user):
    client = Client()
    client.force_login(admin_user)
    form = {**_body(client_secret=""), "scopes": "openid"}

    response = client.post("/admin/security/identityprovider/add/", form)

    assert response.status_code == 200
    assert "needs its client secret" in response.content.decode()
    assert not IdentityProvider.objects.exists()


def test_the_admin_console_lists_linked_identities(admin_user, admin_client):
    admin_client.post(PROVIDERS, _body(), format="json")
    client = Client()
    client.force_login(admin_user)
    assert client.get("/admin/security/externalidentity/").status_code == 200
    assert client.get("/admin/security/identityprovider/").status_code == 200
