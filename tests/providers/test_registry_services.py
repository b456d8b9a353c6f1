"""Registry use-cases: providers and models, keys sealed at rest, events, validation,
permissions, table prices for new models and probe results."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from lumina.kernel.errors import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from lumina.kernel.models import OutboxEvent
from lumina.providers.models.registry import Deployment, Provider
from lumina.providers.selectors.registry import (
    capabilities_list,
    catalogue,
    deployment_get,
    endpoint_for,
    provider_get,
)
from lumina.providers.services.registry import (
    deployment_create,
    deployment_delete,
    deployment_record_probe,
    deployment_update,
    provider_create,
    provider_delete,
    provider_update,
)
from lumina.providers.types import Capability, ProviderKind
from lumina.security.api import decrypt_secret
from lumina.security.models.crypto import DataKey
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SECRET,
    SYSTEM,
    actor_with_role,
    fresh_registry_caches,
    stored_api_key,
)
from tests.security.rbac_support import events_named

pytestmark = pytest.mark.django_db


def _openai(name: str = "openai-main", **extra):
    values = {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": SECRET}
    return provider_create(actor=SYSTEM, name=name, **{**values, **extra})


def _field_error(excinfo, field: str) -> None:
    assert field in excinfo.value.fields, excinfo.value.fields


# --- Keys --------------------------------------------------------------------------------


def test_api_key_is_stored_only_as_ciphertext_that_opens_for_this_provider():
    provider = _openai()
    stored = stored_api_key(provider.id)
    assert stored
    assert SECRET not in stored
    assert provider.has_api_key
    owner = f"providers.provider:{provider.id}"
    assert decrypt_secret(stored, owner=owner, actor=SYSTEM) == SECRET
    row = Provider.objects.get(pk=provider.id)
    assert SECRET not in repr(row)
    assert SECRET not in str(row)
    assert SECRET not in repr(provider)


def test_replacing_a_key_shreds_the_old_one_and_bumps_the_revision():
    provider = _openai()
    old = stored_api_key(provider.id)
    updated = provider_update(actor=SYSTEM, provider_id=provider.id, api_key="sk-new-key-2")
    assert updated.revision == provider.revision + 1
    new = stored_api_key(provider.id)
    assert new != old
    assert DataKey.objects.filter(owner=f"providers.provider:{provider.id}").count() == 1
    deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    [model] = catalogue().resolve("openai-main/gpt-4o")
    assert endpoint_for(model).api_key == "sk-new-key-2"


def test_leaving_the_key_out_keeps_it_and_none_removes_it():
    provider = _openai()
    kept = provider_update(actor=SYSTEM, provider_id=provider.id, priority=5)
    assert kept.has_api_key
    assert kept.priority == 5
    removed = provider_update(actor=SYSTEM, provider_id=provider.id, api_key=None)
    assert not removed.has_api_key
    assert stored_api_key(provider.id) == ""
    assert not DataKey.objects.filter(owner=f"providers.provider:{provider.id}").exists()
    changes = [row.payload["changed"] for row in events_named("providers.ProviderUpdated")]
    assert changes == [["priority"], ["api_key"]]


def test_a_blank_key_is_refused_without_repeating_it():
    provider = _openai()
    with pytest.raises(ApplicationError) as excinfo:
        provider_update(actor=SYSTEM, provider_id=provider.id, api_key="")
    _field_error(excinfo, "api_key")
    with pytest.raises(ApplicationError) as excinfo:
        provider_update(actor=SYSTEM, provider_id=provider.id, api_key=f"{SECRET} x")
    assert SECRET not in str(excinfo.value.fields) + excinfo.value.message
    assert provider_get(provider_id=provider.id).has_api_key


def test_deleting_a_provider_shreds_its_key_and_removes_its_models():
    provider = _openai()
    deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    provider_delete(actor=SYSTEM, provider_id=provider.id)
    assert provider_get(provider_id=provider.id) is None
    assert not Deployment.objects.filter(provider_id=provider.id).exists()
    assert not DataKey.objects.filter(owner=f"providers.provider:{provider.id}").exists()
    [removed] = events_named("providers.ProviderRemoved")
    assert removed.payload["provider_id"] == str(provider.id)


# --- Events ------------------------------------------------------------------------------


def test_every_change_publishes_its_event_without_secrets():
    provider = _openai()
    created = deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    deployment_update(actor=SYSTEM, deployment_id=created.id, context_window=64_000)
    deployment_delete(actor=SYSTEM, deployment_id=created.id)
    provider_delete(actor=SYSTEM, provider_id=provider.id)
    names = list(
        OutboxEvent.objects.filter(
            name__startswith="providers.Provider", payload__provider_id=str(provider.id)
        )
        .order_by("created_at")
        .values_list("name", flat=True)
    )
    assert names == [
        "providers.ProviderAdded",
        "providers.ProviderUpdated",
        "providers.ProviderUpdated",
        "providers.ProviderUpdated",
        "providers.ProviderRemoved",
    ]
    for row in OutboxEvent.objects.filter(payload__provider_id=str(provider.id)):
        assert SECRET not in str(row.payload)
        assert row.payload["provider_name"] == "openai-main"
        assert row.payload["provider_kind"] == "openai"
    updates = events_named("providers.ProviderUpdated")
    assert {row.payload["deployment_id"] for row in updates} == {str(created.id)}


def test_a_change_that_changes_nothing_publishes_nothing():
    provider = _openai()
    provider_update(actor=SYSTEM, provider_id=provider.id, priority=0, name="openai-main")
    assert events_named("providers.ProviderUpdated") == []
    assert provider_get(provider_id=provider.id).revision == provider.revision


# --- Validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "watsonx"}, "kind"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "https://user:pw@example.com/v1"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"name": "Has Spaces"}, "name"),
        ({"weight": 0}, "weight"),
        ({"read_timeout": -1}, "read_timeout"),
        ({"kind": "azure_openai"}, "api_version"),
        ({"tags": ["ok", "not ok"]}, "tags"),
    ],
)
def test_bad_provider_input_names_the_field(changes, field):
    values = {"name": "p1", "kind": "openai", "base_url": "https://api.example.com/v1"}
    with pytest.raises(ApplicationError) as excinfo:
        provider_create(actor=SYSTEM, **{**values, **changes})
    assert excinfo.value.status == 400
    _field_error(excinfo, field)
    assert not Provider.objects.filter(name=values["name"]).exists()


def test_single_label_hosts_and_empty_local_urls_are_accepted():
    vllm = provider_create(
        actor=SYSTEM, name="vllm", kind="openai_compatible", base_url="http://vllm:8000/v1"
    )
    assert vllm.base_url == "http://vllm:8000/v1"
    local = provider_create(actor=SYSTEM, name="offline", kind="local")
    assert local.base_url == ""
    assert local.kind is ProviderKind.LOCAL


def test_duplicate_names_conflict():
    _openai()
    with pytest.raises(ConflictError) as excinfo:
        _openai()
    assert excinfo.value.status == 409
    _field_error(excinfo, "name")
    provider = provider_get(provider_id=Provider.objects.get(name="openai-main").pk)
    deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    with pytest.raises(ConflictError) as excinfo:
        deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    _field_error(excinfo, "name")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"input_price": "-1"}, "input_price"),
        ({"output_price": "abc"}, "output_price"),
        ({"capabilities": ["chat", "telepathy"]}, "capabilities"),
        ({"context_window": 0}, "context_window"),
        ({"name": "a/b"}, "name"),
        ({"aliases": ["a/b"]}, "aliases"),
        ({"aliases": ["m1"]}, "aliases"),
    ],
)
def test_bad_model_input_names_the_field(values, field):
    provider = _openai()
    with pytest.raises(ApplicationError) as excinfo:
        deployment_create(actor=SYSTEM, provider_id=provider.id, **{"name": "m1", **values})
    assert excinfo.value.status == 400
    _field_error(excinfo, field)


def test_an_alias_may_not_take_another_models_name_within_a_provider():
    provider = _openai()
    deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o", aliases=["smart"])
    with pytest.raises(ApplicationError) as excinfo:
        deployment_create(actor=SYSTEM, provider_id=provider.id, name="other", aliases=["gpt-4o"])
    _field_error(excinfo, "aliases")
    with pytest.raises(ApplicationError) as excinfo:
        deployment_create(actor=SYSTEM, provider_id=provider.id, name="smart")
    _field_error(excinfo, "name")


def test_a_model_of_another_provider_is_not_found_under_this_one():
    first, second = _openai("one"), _openai("two")
    model = deployment_create(actor=SYSTEM, provider_id=first.id, name="gpt-4o")
    with pytest.raises(NotFoundError):
        deployment_update(
            actor=SYSTEM, deployment_id=model.id, provider_id=second.id, context_window=10
        )
    with pytest.raises(NotFoundError):
        provider_update(actor=SYSTEM, provider_id=uuid.uuid4(), priority=1)


# --- Permissions -------------------------------------------------------------------------


def test_a_viewer_may_not_add_change_or_delete():
    viewer = actor_with_role("Viewer")
    provider = _openai()
    with pytest.raises(PermissionDeniedError):
        provider_create(actor=viewer, name="nope", kind="openai", base_url="https://x.example")
    with pytest.raises(PermissionDeniedError):
        provider_update(actor=viewer, provider_id=provider.id, api_key="sk-stolen")
    with pytest.raises(PermissionDeniedError):
        deployment_create(actor=viewer, provider_id=provider.id, name="gpt-4o")
    with pytest.raises(PermissionDeniedError):
        provider_delete(actor=viewer, provider_id=provider.id)
    assert provider_get(provider_id=provider.id).revision == provider.revision
    assert len(events_named("security.AccessDenied")) == 4


def test_an_admin_role_may_manage_providers():
    admin = actor_with_role("Admin")
    provider = provider_create(
        actor=admin, name="anthropic", kind="anthropic", base_url="https://api.anthropic.com"
    )
    deployment_create(actor=admin, provider_id=provider.id, name="claude-sonnet-4-5")
    provider_delete(actor=admin, provider_id=provider.id)


# --- Prices from the tables --------------------------------------------------------------


def test_a_model_without_prices_takes_the_shipped_tables_prices_and_facts():
    provider = _openai()
    model = deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    assert model.prices.input == Decimal("2.5")
    assert model.prices.cached_input == Decimal("1.25")
    assert model.prices.output == Decimal("10")
    assert model.price_source == "lumina-2026-11-01"
    assert model.context_window == 128_000
    assert Capability.VISION in model.capabilities


def test_given_prices_are_manual_and_a_later_price_change_becomes_manual():
    provider = _openai()
    model = deployment_create(
        actor=SYSTEM,
        provider_id=provider.id,
        name="cheap",
        upstream_model="gpt-4o-mini",
        input_price="0.1",
        output_price=Decimal("0.2"),
    )
    assert model.price_source == "manual"
    assert model.prices.cached_input is None
    from_table = deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o")
    changed = deployment_update(actor=SYSTEM, deployment_id=from_table.id, output_price="9")
    assert changed.price_source == "manual"
    assert changed.prices.output == Decimal("9")
    assert changed.prices.input == Decimal("2.5")


def test_an_unknown_model_without_prices_is_free_chat_by_default():
    provider = _openai()
    model = deployment_create(actor=SYSTEM, provider_id=provider.id, name="my-finetune")
    assert model.prices.input == model.prices.output == 0
    assert model.price_source == "manual"
    assert model.capabilities == {Capability.CHAT, Capability.STREAMING}
    assert model.context_window == 8192


# --- Probe results -----------------------------------------------------------------------


def test_probe_results_are_recorded_merged_and_listed():
    provider = ProviderFactory()
    model = DeploymentFactory(provider=provider)
    deployment_record_probe(
        deployment_id=model.id,
        results={"chat": {"ok": True, "latency_ms": 12.3456}, "tools": {"ok": False, "error": "x"}},
    )
    deployment_record_probe(deployment_id=model.id, results={"tools": {"ok": True}})
    info = deployment_get(deployment_id=model.id)
    verified = {v.capability: v for v in info.verified}
    assert verified["chat"].ok
    assert verified["chat"].latency_ms == 12.346
    assert verified["tools"].ok
    assert verified["tools"].error == ""
    assert verified["chat"].checked_at
    [report] = [r for r in capabilities_list() if r.deployment_id == model.id]
    assert report.declared == (Capability.CHAT, Capability.STREAMING)
    assert {v.capability for v in report.verified} == {"chat", "tools"}


@pytest.mark.parametrize(
    "results",
    [
        {"telepathy": {"ok": True}},
        {"chat": {"latency_ms": 1}},
        {"chat": {"ok": True, "latency_ms": -5}},
    ],
)
def test_bad_probe_results_name_the_field(results):
    model = DeploymentFactory()
    with pytest.raises(ApplicationError) as excinfo:
        deployment_record_probe(deployment_id=model.id, results=results)
    _field_error(excinfo, "results")
