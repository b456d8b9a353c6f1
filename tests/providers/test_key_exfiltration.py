"""Item: a provider's sealed API key cannot be sent to a new destination without the key.

The attack: someone who may change providers (the Admin role) but not decrypt secrets
points a provider's ``base_url`` at a server of theirs; the next model call would carry
the stored key there. The attacker's server records every credential header it gets.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from lumina.providers import api
from lumina.providers.models.registry import Provider
from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear
from lumina.providers.types import ProviderKind
from tests.kernel.outbound_support import CHAT_COMPLETION, RecordingServer
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import SECRET, stored_api_key, user_with_role
from tests.security.rbac_support import actor_for, assert_error, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]

PROVIDERS = "/api/v1/providers"


@pytest.fixture
def attacker():
    with RecordingServer(body=CHAT_COMPLETION) as server:
        yield server


@pytest.fixture
def victim(openai_upstream):
    """A provider holding SECRET, and a Developer who uses it."""
    openai_upstream.script.expect_api_key = SECRET
    provider = ProviderFactory(
        name="victim", kind=ProviderKind.OPENAI.value, base_url=openai_upstream.url, api_key=SECRET
    )
    DeploymentFactory(provider=provider, name="chat")
    return provider


def _call_model() -> dict:
    # Another user calls the model afterwards, as would happen in production.
    catalogue_clear_local()
    endpoint_cache_clear()
    developer = actor_for(user_with_role("Developer"))
    return api.complete(
        [{"role": "user", "content": "hello"}], actor=developer, model="victim/chat"
    )


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_admin_cannot_send_the_stored_key_to_their_own_server(victim, attacker):
    admin = _client(user_with_role("Admin"))

    response = admin.patch(
        f"{PROVIDERS}/{victim.pk}", {"base_url": f"{attacker.url}/v1"}, format="json"
    )

    error = assert_error(response, 400, "api_key_required")
    assert set(error["fields"]) == {"base_url", "api_key"}
    victim.refresh_from_db()
    assert victim.base_url != f"{attacker.url}/v1"
    assert _call_model()["choices"][0]["message"]["content"]  # still served by the real one
    assert attacker.received == []
    assert SECRET not in response.content.decode()


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "azure_openai", "api_version": "2024-10-21"},
        {"kind": "anthropic"},
        {"base_url": "http://127.0.0.1:9/v1", "enabled": False},
    ],
)
def test_every_change_of_destination_needs_the_key(victim, change):
    admin = _client(user_with_role("Admin"))

    response = admin.patch(f"{PROVIDERS}/{victim.pk}", change, format="json")

    error = assert_error(response, 400, "api_key_required")
    assert "api_key" in error["fields"]
    assert set(error["fields"]) & {"kind", "base_url"}
    stored = Provider.objects.get(pk=victim.pk)
    assert (stored.kind, stored.base_url, stored.enabled) == (victim.kind, victim.base_url, True)


def test_with_the_key_given_again_the_change_goes_through_and_only_that_key_travels(
    victim, attacker
):
    admin = _client(user_with_role("Admin"))

    response = admin.patch(
        f"{PROVIDERS}/{victim.pk}",
        {"base_url": f"{attacker.url}/v1", "api_key": "sk-the-admins-own-key"},
        format="json",
    )

    assert response.status_code == 200, response.content
    _call_model()
    assert attacker.authorizations() == ["Bearer sk-the-admins-own-key"]
    assert SECRET not in str(attacker.received)


def test_removing_the_key_with_the_move_is_allowed(victim, attacker):
    admin = _client(user_with_role("Admin"))

    response = admin.patch(
        f"{PROVIDERS}/{victim.pk}",
        {"base_url": f"{attacker.url}/v1", "api_key": None},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["has_api_key"] is False
    _call_model()
    assert len(attacker.received) == 1
    assert attacker.authorizations() == []


def test_whoever_may_decrypt_secrets_may_move_the_key(victim, attacker):
    """Also the proof that the attacker's server would see the key if it were sent."""
    owner = _client(user_with_role("Owner"))

    response = owner.patch(
        f"{PROVIDERS}/{victim.pk}", {"base_url": f"{attacker.url}/v1"}, format="json"
    )

    assert response.status_code == 200, response.content
    _call_model()
    assert attacker.authorizations() == [f"Bearer {SECRET}"]


def test_other_changes_need_no_key(victim):
    admin = _client(user_with_role("Admin"))

    response = admin.patch(
        f"{PROVIDERS}/{victim.pk}", {"priority": 5, "base_url": victim.base_url}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["has_api_key"] is True


def test_the_admin_console_refuses_the_move_without_the_key(victim, attacker):
    staff = make_user(is_staff=True)
    from tests.security.rbac_support import give_role

    give_role(staff, "Admin")
    console = Client()
    console.force_login(staff)
    form = {
        "name": victim.name,
        "kind": victim.kind,
        "base_url": f"{attacker.url}/v1",
        "new_api_key": "",
        "enabled": "on",
        "priority": "0",
        "weight": "1",
        "max_concurrency": "64",
        "connect_timeout": "5",
        "read_timeout": "60",
        "api_version": "",
        "tags": "",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "1",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "0",
    }
    url = f"/admin/providers/provider/{victim.pk}/change/"

    response = console.post(url, form)

    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert "base_url" in errors
    assert "new_api_key" in errors
    assert Provider.objects.get(pk=victim.pk).base_url == victim.base_url
    assert stored_api_key(victim.pk) == Provider.objects.get(pk=victim.pk).api_key

    # With the key typed again, the same form saves.
    response = console.post(url, {**form, "new_api_key": "sk-typed-again"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Provider.objects.get(pk=victim.pk).base_url == f"{attacker.url}/v1"
    _call_model()
    assert attacker.authorizations() == ["Bearer sk-typed-again"]
