"""Items: an identity provider's client secret cannot be sent to a new issuer without the
secret, and identity provider URLs cannot reach inside (save time and connect time).

The attacker's "identity provider" is a loopback server that serves a discovery document
naming itself, and records every request, the token request with the client secret in
its ``Authorization`` header included.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient

from lumina.security.models.oidc import IdentityProvider
from lumina.security.models.rbac import Role, RoleAssignment
from tests.kernel.outbound_support import RecordingServer
from tests.security.mfa_support import error_of, make_user
from tests.security.oidc_support import CALLBACK_PATH, LOGIN_PATH, create_provider

pytestmark = [pytest.mark.django_db]

PROVIDERS = "/api/v1/auth/oauth/providers"
DISCOVERY = "/.well-known/openid-configuration"
SECRET = "the-real-client-secret-7f3a"


def _fake_idp(
    server: RecordingServer, *, token_endpoint: str | None = None, jwks: str = ""
) -> None:
    server.routes[DISCOVERY] = (
        200,
        json.dumps(
            {
                "issuer": server.url,
                "authorization_endpoint": f"{server.url}/authorize",
                "token_endpoint": token_endpoint or f"{server.url}/token",
                "jwks_uri": jwks or f"{server.url}/jwks",
            }
        ).encode(),
    )
    server.routes["/jwks"] = (200, b'{"keys": []}')
    server.routes["/token"] = (400, b'{"error": "invalid_grant"}')


def _provider(issuer: str, **overrides) -> IdentityProvider:
    from lumina.security.services.oidc import identity_provider_create
    from lumina.security.types import Actor

    settings = {
        "slug": "test-idp",
        "display_name": "Corp",
        "issuer": issuer,
        "client_id": "lumina",
        "client_secret": SECRET,
        **overrides,
    }
    return identity_provider_create(**settings, actor=Actor(user_id=None))


def _manager() -> APIClient:
    """May manage identity providers (a custom role an Owner gave), not decrypt secrets."""
    user = make_user("idp-manager@example.test")
    role = Role.objects.create(
        name="Identity providers", permissions=["security.identity_providers.manage"]
    )
    RoleAssignment.objects.create(role=role, user=user)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _secrets_sent_to(server: RecordingServer) -> list[str]:
    found = []
    for request in server.received:
        value = request.headers.get("Authorization", "")
        if value.startswith("Basic "):
            found.append(base64.b64decode(value[6:]).decode())
        found.append(request.body.decode(errors="replace"))
    return [text for text in found if SECRET in text]


def _log_in_through_lumina() -> None:
    """A user starts a login and comes back with a code: Lumina exchanges it at the token
    endpoint, with the client secret."""
    client = APIClient()
    start = client.get(LOGIN_PATH)
    assert start.status_code == 302, start.content
    state = dict(parse_qsl(urlsplit(start["Location"]).query))["state"]
    client.get(f"{CALLBACK_PATH}?code=stolen-code&state={state}")


# --- Item: the client secret follows the issuer only with the secret ---------------------


def test_changing_the_issuer_without_the_secret_is_refused_and_the_secret_stays_home():
    with RecordingServer() as real, RecordingServer() as attacker:
        _fake_idp(real)
        _fake_idp(attacker)
        provider = _provider(real.url)

        response = _manager().patch(
            f"{PROVIDERS}/{provider.pk}", {"issuer": attacker.url}, format="json"
        )

        error = error_of(response, 400)
        assert error["code"] == "client_secret_required"
        assert set(error["fields"]) == {"issuer", "client_secret"}
        assert IdentityProvider.objects.get(pk=provider.pk).issuer == real.url
        _log_in_through_lumina()
        assert _secrets_sent_to(real)  # the secret does travel: to the real provider only
        assert attacker.received == []


def test_with_the_secret_given_again_only_that_secret_travels():
    with RecordingServer() as real, RecordingServer() as attacker:
        _fake_idp(real)
        _fake_idp(attacker)
        provider = _provider(real.url)

        response = _manager().patch(
            f"{PROVIDERS}/{provider.pk}",
            {"issuer": attacker.url, "client_secret": "the-managers-own-secret"},
            format="json",
        )

        assert response.status_code == 200, response.content
        _log_in_through_lumina()
        assert attacker.received
        assert _secrets_sent_to(attacker) == []


def test_a_superuser_may_move_the_secret(admin_client):
    """Also the proof that the attacker's server would see the secret if it were sent."""
    with RecordingServer() as real, RecordingServer() as attacker:
        _fake_idp(real)
        _fake_idp(attacker)
        provider = _provider(real.url)

        response = admin_client.patch(
            f"{PROVIDERS}/{provider.pk}", {"issuer": attacker.url}, format="json"
        )

        assert response.status_code == 200, response.content
        _log_in_through_lumina()
        assert _secrets_sent_to(attacker)


def test_the_admin_console_asks_for_the_secret_when_the_issuer_changes():
    staff = make_user("idp-staff@example.test", staff=True)
    role = Role.objects.create(name="IdP", permissions=["security.identity_providers.manage"])
    RoleAssignment.objects.create(role=role, user=staff)
    # The console's own permission check (Django's) is not what is tested here.
    staff.is_superuser = False
    from django.contrib.auth.models import Permission

    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="security", codename__endswith="provider")
    )
    provider = _provider("https://sso.example.test")
    console = Client()
    console.force_login(staff)
    form = {
        "display_name": "Corp",
        "issuer": "https://evil.example.test",
        "client_id": "lumina",
        "client_secret": "",
        "scopes": "openid email profile",
        "enabled": "on",
    }
    url = f"/admin/security/identityprovider/{provider.pk}/change/"

    response = console.post(url, form)

    assert response.status_code == 200, response.status_code
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"issuer", "client_secret"}
    assert IdentityProvider.objects.get(pk=provider.pk).issuer == "https://sso.example.test"
    assert console.post(url, {**form, "client_secret": "typed-again"}).status_code == 302
    assert IdentityProvider.objects.get(pk=provider.pk).issuer == "https://evil.example.test"


# --- Item: identity provider URLs cannot reach inside --------------------------------------


@pytest.mark.parametrize(
    "issuer",
    [
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]",
        "http://127.0.0.1:8080",
        "http://2130706433",
        "http://localhost:9000",
        "http://10.0.0.7/realms/corp",
        "http://metadata.google.internal",
    ],
)
def test_an_issuer_inside_is_refused_at_save_time(admin_client, settings, issuer):
    settings.LUMINA_OUTBOUND_ALLOW = ()
    body = {
        "slug": "corp", "display_name": "Corp", "issuer": issuer, "client_id": "lumina",
        "client_secret": SECRET,
    }  # fmt: skip

    response = admin_client.post(PROVIDERS, body, format="json")

    assert "issuer" in error_of(response, 400)["fields"]
    assert not IdentityProvider.objects.exists()


def test_an_issuer_saved_before_the_policy_tightened_is_refused_at_connect_time(settings):
    with RecordingServer() as inside:
        _fake_idp(inside)
        _provider(inside.url)
        settings.LUMINA_OUTBOUND_ALLOW = ()

        error = error_of(APIClient().get(LOGIN_PATH), 502)

        assert error["code"] == "identity_provider_unavailable"
        assert inside.received == []
        settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.1/32",)
        assert APIClient().get(LOGIN_PATH).status_code == 302  # the same login, allowed
        assert inside.received


def test_endpoints_named_by_the_discovery_document_are_checked_too(settings):
    """The discovery document is the provider's to write: its JWKS and token endpoints
    pointing inside are refused when connecting, as the issuer would be."""
    settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.1/32",)
    with RecordingServer(host="127.0.0.2") as inside, RecordingServer() as idp:
        _fake_idp(idp, jwks=f"{inside.url}/jwks")
        _provider(idp.url)

        error = error_of(APIClient().get(LOGIN_PATH), 502)

        assert error["code"] == "identity_provider_unavailable"
        assert idp.received
        assert inside.received == []

    with RecordingServer(host="127.0.0.2") as inside, RecordingServer() as idp:
        _fake_idp(idp, token_endpoint=f"{inside.url}/token")
        IdentityProvider.objects.update(issuer=idp.url)

        _log_in_through_lumina()

        assert inside.received == []  # the code and the client secret went nowhere


def test_no_redirect_is_followed_by_the_back_channel(settings):
    with RecordingServer() as elsewhere, RecordingServer() as idp:
        _fake_idp(idp)
        idp.routes["/token"] = (307, b"")
        idp.headers = {"Location": f"{elsewhere.url}/token", "Content-Type": "application/json"}
        _provider(idp.url)

        _log_in_through_lumina()

        assert _secrets_sent_to(idp)
        assert elsewhere.received == []


@pytest.mark.slow
def test_the_real_provider_works_through_the_guard_when_loopback_is_allowed(openid_provider):
    """The positive control with the real OpenID provider: discovery, JWKS, token."""
    from tests.security.oidc_support import account, log_in

    create_provider(openid_provider)
    response, _ = log_in(APIClient(), account("guard-sub", "guard@example.test"))
    assert response.status_code == 200, response.content
