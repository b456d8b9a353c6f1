"""/api/v1/providers: providers and their models over REST; the key goes in, never out."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from lumina.providers.models.registry import Provider
from lumina.providers.services.registry import deployment_record_probe
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SECRET,
    fresh_registry_caches,
    stored_api_key,
    user_with_role,
)
from tests.security.rbac_support import assert_error, events_named, make_user

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/providers"
OPENAI = {
    "name": "openai-main",
    "kind": "openai",
    "base_url": "https://api.openai.com/v1",
    "api_key": SECRET,
}


def _client(role: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role(role))
    return client


@pytest.fixture
def viewer_client() -> APIClient:
    return _client("Viewer")


def _create(client, **changes) -> dict:
    response = client.post(PROVIDERS, {**OPENAI, **changes}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _models(provider_id) -> str:
    return f"{PROVIDERS}/{provider_id}/models"


# --- Providers ---------------------------------------------------------------------------


def test_create_returns_the_provider_without_its_key(admin_client):
    response = admin_client.post(PROVIDERS, OPENAI, format="json")
    assert response.status_code == 201
    assert SECRET not in response.content.decode()
    body = response.json()
    assert "api_key" not in body
    assert body["has_api_key"] is True
    assert body["name"] == "openai-main"
    assert body["kind"] == "openai"
    assert body["revision"] == 1
    assert SECRET not in stored_api_key(body["id"])
    assert events_named("providers.ProviderAdded")


def test_lists_and_details_never_include_the_key(admin_client):
    created = _create(admin_client)
    for url in (PROVIDERS, f"{PROVIDERS}/{created['id']}", f"{PROVIDERS}/capabilities"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode()
    listing = admin_client.get(PROVIDERS).json()
    assert {"count", "next", "previous", "results"} <= set(listing)
    assert "openai-main" in {p["name"] for p in listing["results"]}


def test_the_list_filters_and_paginates(admin_client):
    _create(admin_client)
    _create(admin_client, name="claude", kind="anthropic", base_url="https://api.anthropic.com")
    kinds = admin_client.get(PROVIDERS, {"kind": "anthropic"}).json()
    assert [p["name"] for p in kinds["results"]] == ["claude"]
    page = admin_client.get(PROVIDERS, {"page_size": 1}).json()
    assert len(page["results"]) == 1
    assert page["next"]
    assert_error(admin_client.get(PROVIDERS, {"kind": "nope"}), 400, "invalid", "kind")


def test_patch_changes_settings_and_replaces_or_removes_the_key(admin_client):
    created = _create(admin_client)
    url = f"{PROVIDERS}/{created['id']}"
    before = stored_api_key(created["id"])
    changed = admin_client.patch(url, {"priority": 7, "weight": 3}, format="json").json()
    assert (changed["priority"], changed["weight"], changed["has_api_key"]) == (7, 3, True)
    assert stored_api_key(created["id"]) == before
    replaced = admin_client.patch(url, {"api_key": "sk-other"}, format="json")
    assert replaced.status_code == 200
    assert "sk-other" not in replaced.content.decode()
    assert stored_api_key(created["id"]) != before
    removed = admin_client.patch(url, {"api_key": None}, format="json").json()
    assert removed["has_api_key"] is False
    assert removed["revision"] == 4


def test_delete_removes_the_provider(admin_client):
    created = _create(admin_client)
    url = f"{PROVIDERS}/{created['id']}"
    assert admin_client.delete(url).status_code == 204
    assert_error(admin_client.get(url), 404, "not_found")
    assert_error(admin_client.delete(url), 404)
    assert events_named("providers.ProviderRemoved")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "watsonx"}, "kind"),
        ({"base_url": "htp:/broken"}, "base_url"),
        ({"base_url": "https://key:secret@api.example.com"}, "base_url"),
        ({"name": "Bad Name!"}, "name"),
        ({"name": ""}, "name"),
        ({"api_key": ""}, "api_key"),
        ({"weight": 0}, "weight"),
        ({"priority": "high"}, "priority"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"kind": "azure_openai"}, "api_version"),
        ({"tags": "not-a-list"}, "tags"),
    ],
)
def test_bad_provider_input_is_a_400_naming_the_field(admin_client, changes, field):
    response = admin_client.post(PROVIDERS, {**OPENAI, **changes}, format="json")
    error = assert_error(response, 400, "invalid", field)
    assert SECRET not in str(error)
    assert not Provider.objects.filter(name=OPENAI["name"]).exists()


def test_a_duplicate_name_is_a_409_naming_the_field(admin_client):
    _create(admin_client)
    assert_error(admin_client.post(PROVIDERS, OPENAI, format="json"), 409, "conflict", "name")
    other = _create(admin_client, name="second")
    response = admin_client.patch(
        f"{PROVIDERS}/{other['id']}", {"name": "openai-main"}, format="json"
    )
    assert_error(response, 409, "conflict", "name")


def test_an_unknown_provider_is_a_404(admin_client):
    assert_error(admin_client.get(f"{PROVIDERS}/{uuid.uuid4()}"), 404, "not_found")
    assert_error(
        admin_client.patch(f"{PROVIDERS}/{uuid.uuid4()}", {"priority": 1}, format="json"), 404
    )
    assert_error(admin_client.get(_models(uuid.uuid4())), 404)


# --- Models ------------------------------------------------------------------------------


def test_models_are_added_listed_changed_and_removed(admin_client):
    provider = _create(admin_client)
    created = admin_client.post(
        _models(provider["id"]), {"name": "gpt-4o", "aliases": ["smart"]}, format="json"
    )
    assert created.status_code == 201, created.content
    model = created.json()
    assert model["qualified_name"] == "openai-main/gpt-4o"
    assert model["upstream_model"] == "gpt-4o"
    assert model["input_price"] == "2.5"
    assert model["cached_input_price"] == "1.25"
    assert model["output_price"] == "10"
    assert model["cache_write_price"] is None
    assert model["price_source"] == "lumina-2026-11-01"
    assert "vision" in model["capabilities"]
    listing = admin_client.get(_models(provider["id"])).json()
    assert [m["name"] for m in listing["results"]] == ["gpt-4o"]
    url = f"{_models(provider['id'])}/{model['id']}"
    changed = admin_client.patch(
        url, {"output_price": "12.5", "capabilities": ["chat"]}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["output_price"] == "12.5"
    assert changed.json()["price_source"] == "manual"
    assert changed.json()["capabilities"] == ["chat"]
    assert admin_client.get(url).json()["output_price"] == "12.5"
    assert admin_client.delete(url).status_code == 204
    assert_error(admin_client.get(url), 404)


def test_a_model_is_only_reachable_under_its_own_provider(admin_client):
    first, second = _create(admin_client), _create(admin_client, name="second")
    model = admin_client.post(_models(first["id"]), {"name": "m"}, format="json").json()
    wrong = f"{_models(second['id'])}/{model['id']}"
    assert_error(admin_client.get(wrong), 404)
    assert_error(admin_client.patch(wrong, {"enabled": False}, format="json"), 404)
    assert_error(admin_client.delete(wrong), 404)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"name": "m", "input_price": "-0.5"}, "input_price", 400),
        ({"name": "m", "output_price": "cheap"}, "output_price", 400),
        ({"name": "m", "capabilities": ["chat", "telepathy"]}, "capabilities", 400),
        ({"name": "m", "context_window": 0}, "context_window", 400),
        ({"name": "a/b"}, "name", 400),
        ({}, "name", 400),
        ({"name": "m", "aliases": ["m"]}, "aliases", 400),
        ({"name": "taken"}, "name", 409),
    ],
)
def test_bad_model_input_names_the_field(admin_client, body, field, status):
    provider = _create(admin_client)
    admin_client.post(_models(provider["id"]), {"name": "taken"}, format="json")
    response = admin_client.post(_models(provider["id"]), body, format="json")
    assert_error(response, status, field=field)


def test_capabilities_show_declared_and_verified_with_latency(admin_client):
    provider = _create(admin_client)
    model = admin_client.post(
        _models(provider["id"]), {"name": "m", "capabilities": ["chat", "tools"]}, format="json"
    ).json()
    deployment_record_probe(
        deployment_id=uuid.UUID(model["id"]),
        results={"chat": {"ok": True, "latency_ms": 41.5}, "tools": {"ok": False, "error": "400"}},
    )
    body = admin_client.get(f"{PROVIDERS}/capabilities", {"provider": provider["id"]}).json()
    [row] = body["results"]
    assert row["qualified_name"] == "openai-main/m"
    assert row["declared"] == ["chat", "tools"]
    verified = {v["capability"]: v for v in row["verified"]}
    assert verified["chat"]["ok"] is True
    assert verified["chat"]["latency_ms"] == 41.5
    assert verified["tools"] == {**verified["tools"], "ok": False, "error": "400"}
    detail = admin_client.get(f"{_models(provider['id'])}/{model['id']}").json()
    assert {v["capability"] for v in detail["verified"]} == {"chat", "tools"}


# --- Permissions -------------------------------------------------------------------------


def test_a_viewer_reads_but_may_not_write(admin_client, viewer_client):
    provider = _create(admin_client)
    url = f"{PROVIDERS}/{provider['id']}"
    assert viewer_client.get(PROVIDERS).status_code == 200
    assert viewer_client.get(url).status_code == 200
    assert viewer_client.get(f"{PROVIDERS}/capabilities").status_code == 200
    refused = [
        viewer_client.post(PROVIDERS, {**OPENAI, "name": "mine"}, format="json"),
        viewer_client.patch(url, {"api_key": "sk-mine"}, format="json"),
        viewer_client.delete(url),
        viewer_client.post(_models(provider["id"]), {"name": "m"}, format="json"),
    ]
    for response in refused:
        assert_error(response, 403, "permission_denied")
    assert Provider.objects.get(pk=provider["id"]).revision == 1


def test_a_user_without_a_role_may_not_even_read(api_client):
    api_client.force_authenticate(make_user())
    assert_error(api_client.get(PROVIDERS), 403, "permission_denied")


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get(PROVIDERS).status_code in (401, 403)
