"""The admin console's provider, model and price pages: writes go through the services,
the API key is write-only, and Lumina's permissions decide who sees and changes what."""

from __future__ import annotations

import pytest
from django.test import Client

from lumina.providers.models.registry import Deployment, Price, Provider
from lumina.providers.pricing import SHIPPED_PATH
from lumina.providers.services.registry import prices_import, provider_create
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SECRET,
    SYSTEM,
    fresh_registry_caches,
    stored_api_key,
    user_with_role,
)
from tests.security.rbac_support import events_named, make_user

pytestmark = pytest.mark.django_db

ADMIN = "/admin/providers"
FORM = {
    "name": "openai-main",
    "kind": "openai",
    "base_url": "https://api.openai.com/v1",
    "new_api_key": SECRET,
    "enabled": "on",
    "priority": "0",
    "weight": "1",
    "max_concurrency": "64",
    "connect_timeout": "5",
    "read_timeout": "60",
    "api_version": "",
    "tags": "",
    # The read-only models inline's management form.
    "deployments-TOTAL_FORMS": "0",
    "deployments-INITIAL_FORMS": "0",
    "deployments-MIN_NUM_FORMS": "0",
    "deployments-MAX_NUM_FORMS": "0",
}


@pytest.fixture
def console(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _html(response) -> str:
    return response.content.decode()


def test_adding_a_provider_encrypts_the_key_and_publishes_the_event(console):
    response = console.post(f"{ADMIN}/provider/add/", FORM)
    assert response.status_code == 302, _html(response)[:3000]
    provider = Provider.objects.get(name="openai-main")
    assert provider.has_api_key
    assert SECRET not in stored_api_key(provider.pk)
    added = events_named("providers.ProviderAdded")
    assert [e.payload["provider_id"] for e in added][-1] == str(provider.pk)


def test_the_key_is_never_displayed(console):
    provider = provider_create(
        actor=SYSTEM, name="p", kind="openai", base_url="https://x.example", api_key=SECRET
    )
    ciphertext = stored_api_key(provider.id)
    for url in (f"{ADMIN}/provider/", f"{ADMIN}/provider/{provider.id}/change/"):
        response = console.get(url)
        assert response.status_code == 200, url
        assert SECRET not in _html(response)
        assert ciphertext not in _html(response)
    assert "stored (encrypted)" in _html(console.get(f"{ADMIN}/provider/{provider.id}/change/"))


def test_an_empty_key_field_keeps_the_key_and_the_remove_box_removes_it(console):
    provider = provider_create(
        actor=SYSTEM,
        name="openai-main",
        kind="openai",
        base_url=FORM["base_url"],
        api_key=SECRET,
    )
    url = f"{ADMIN}/provider/{provider.id}/change/"
    before = stored_api_key(provider.id)
    kept = console.post(url, {**FORM, "new_api_key": "", "priority": "9"})
    assert kept.status_code == 302, _html(kept)[:3000]
    assert stored_api_key(provider.id) == before
    assert Provider.objects.get(pk=provider.id).priority == 9
    removed = console.post(
        url, {**FORM, "new_api_key": "", "priority": "9", "remove_api_key": "on"}
    )
    assert removed.status_code == 302
    assert stored_api_key(provider.id) == ""
    changes = [e.payload["changed"] for e in events_named("providers.ProviderUpdated")]
    assert changes == [["priority"], ["api_key"]]


def test_bad_input_is_shown_on_its_field(console):
    response = console.post(
        f"{ADMIN}/provider/add/", {**FORM, "base_url": "ftp://nope", "new_api_key": "a b"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "base_url" in errors
    assert "new_api_key" in errors
    assert not Provider.objects.filter(name="openai-main").exists()
    assert SECRET not in _html(response)


def test_deleting_a_provider_goes_through_the_service(console):
    provider = ProviderFactory(api_key=SECRET)
    response = console.post(f"{ADMIN}/provider/{provider.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Provider.objects.filter(pk=provider.pk).exists()
    assert events_named("providers.ProviderRemoved")


def test_the_provider_list_filters_by_kind_and_enabled(console):
    ProviderFactory(name="alpha", kind="anthropic", base_url="https://a.example")
    ProviderFactory(name="beta", kind="ollama", base_url="http://ollama:11434", enabled=False)
    html = _html(console.get(f"{ADMIN}/provider/", {"kind": "anthropic"}))
    assert "alpha" in html
    assert "beta" not in html
    html = _html(console.get(f"{ADMIN}/provider/", {"enabled__exact": "0"}))
    assert "beta" in html
    assert "alpha" not in html


def test_a_model_added_without_prices_takes_the_tables(console):
    provider = ProviderFactory(name="openai-main", kind="openai")
    form = {
        "provider": str(provider.pk),
        "name": "gpt-4o-mini",
        "upstream_model": "",
        "aliases": "",
        "max_output_tokens": "",
        "input_price": "",
        "cached_input_price": "",
        "cache_write_price": "",
        "output_price": "",
        "reasoning_price": "",
        "context_window": "",
        "enabled": "on",
        "tags": "",
    }
    response = console.post(f"{ADMIN}/deployment/add/", form)
    assert response.status_code == 302, _html(response)[:3000]
    model = Deployment.objects.get(provider=provider, name="gpt-4o-mini")
    assert str(model.input_price.normalize()) == "0.15"
    assert model.price_source == "lumina-2026-11-01"
    assert model.context_window == 128_000
    assert "vision" in model.capabilities
    assert events_named("providers.ProviderUpdated")


def test_changing_a_models_price_makes_it_manual(console):
    model = DeploymentFactory(price_source="lumina-2026-11-01")
    page = console.get(f"{ADMIN}/deployment/{model.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data["aliases"] = ""
    data["tags"] = ""
    data["enabled"] = "on"
    data["output_price"] = "2.5"
    response = console.post(f"{ADMIN}/deployment/{model.pk}/change/", data)
    assert response.status_code == 302, _html(response)[:3000]
    model.refresh_from_db()
    assert model.output_price == 2.5
    assert model.price_source == "manual"


def test_model_and_price_lists_filter(console):
    DeploymentFactory(name="on-anthropic", provider=ProviderFactory(kind="anthropic"))
    DeploymentFactory(name="on-ollama", provider=ProviderFactory(kind="ollama"))
    html = _html(console.get(f"{ADMIN}/deployment/", {"provider__kind": "ollama"}))
    assert "on-ollama" in html
    assert "on-anthropic" not in html
    prices_import(actor=SYSTEM, path_or_data=SHIPPED_PATH)
    assert Price.objects.exists()
    html = _html(console.get(f"{ADMIN}/price/", {"provider": "anthropic"}))
    assert "claude-sonnet-4-5" in html
    assert "gpt-4o-mini" not in html
    assert console.get(f"{ADMIN}/price/add/").status_code == 403


def test_a_viewer_on_staff_sees_but_cannot_change():
    viewer = user_with_role("Viewer", is_staff=True)
    provider = ProviderFactory(api_key=SECRET)
    client = Client()
    client.force_login(viewer)
    assert client.get(f"{ADMIN}/provider/").status_code == 200
    assert client.get(f"{ADMIN}/provider/add/").status_code == 403
    response = client.post(f"{ADMIN}/provider/{provider.pk}/change/", {**FORM, "priority": "5"})
    assert response.status_code == 403
    assert (
        client.post(f"{ADMIN}/provider/{provider.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Provider.objects.get(pk=provider.pk).priority == 0


def test_staff_without_a_role_do_not_see_providers():
    client = Client()
    client.force_login(make_user(is_staff=True))
    assert client.get(f"{ADMIN}/provider/").status_code == 403
