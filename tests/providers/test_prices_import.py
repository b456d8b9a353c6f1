"""Price tables: the shipped file, LiteLLM's format, exact per-million conversion,
bad entries reported, and deployments re-priced from the table."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lumina.kernel.errors import ApplicationError, PermissionDeniedError
from lumina.providers import pricing
from lumina.providers.models.registry import Price
from lumina.providers.selectors.registry import catalogue, deployment_get
from lumina.providers.services.registry import (
    deployment_create,
    prices_import,
    provider_create,
)
from lumina.providers.types import Capability, Usage
from tests.providers.registry_support import (  # noqa: F401 (fixture)
    SYSTEM,
    actor_with_role,
    fresh_registry_caches,
)
from tests.security.rbac_support import events_named

pytestmark = pytest.mark.django_db

# Written as LiteLLM writes it: per-token prices in exponent notation.
LITELLM_TEXT = """{
  "sample_spec": {
    "max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it.",
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
    "mode": "one of: chat, embedding, completion, image_generation"
  },
  "gpt-4o-mini": {
    "max_tokens": 16384,
    "max_input_tokens": 128000,
    "max_output_tokens": 16384,
    "input_cost_per_token": 1.5e-07,
    "output_cost_per_token": 6e-07,
    "cache_read_input_token_cost": 7.5e-08,
    "litellm_provider": "openai",
    "mode": "chat",
    "supports_function_calling": true,
    "supports_vision": true,
    "supports_response_schema": true
  },
  "gpt-4.1-mini": {
    "max_input_tokens": 1047576,
    "max_output_tokens": 32768,
    "input_cost_per_token": 4e-07,
    "output_cost_per_token": 1.6e-06,
    "cache_read_input_token_cost": 1e-07,
    "litellm_provider": "openai",
    "mode": "chat"
  },
  "claude-sonnet-4-5-20250929": {
    "max_input_tokens": 200000,
    "max_output_tokens": 64000,
    "input_cost_per_token": 3e-06,
    "output_cost_per_token": 1.5e-05,
    "cache_creation_input_token_cost": 3.75e-06,
    "cache_read_input_token_cost": 3e-07,
    "litellm_provider": "anthropic",
    "mode": "chat",
    "supports_function_calling": true
  },
  "o4-mini": {
    "max_input_tokens": 200000,
    "max_output_tokens": 100000,
    "input_cost_per_token": 1.1e-06,
    "output_cost_per_token": 4.4e-06,
    "output_cost_per_reasoning_token": 4.4e-06,
    "litellm_provider": "openai",
    "mode": "chat"
  },
  "azure/gpt-4o": {
    "max_input_tokens": 128000,
    "input_cost_per_token": 2.5e-06,
    "output_cost_per_token": 1e-05,
    "litellm_provider": "azure",
    "mode": "chat"
  },
  "text-embedding-3-small": {
    "max_input_tokens": 8191,
    "input_cost_per_token": 2e-08,
    "output_cost_per_token": 0.0,
    "litellm_provider": "openai",
    "mode": "embedding"
  },
  "dall-e-3": {"mode": "image_generation", "litellm_provider": "openai"},
  "whisper-1": {"mode": "audio_transcription", "input_cost_per_second": 0.0001},
  "broken-price": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-06},
  "negative": {"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06},
  "no-output": {"input_cost_per_token": 1e-06, "mode": "chat"},
  "not-an-object": 42
}"""


@pytest.fixture
def litellm_file(tmp_path):
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(LITELLM_TEXT)
    return path


def _skipped(report) -> dict[str, str]:
    return dict(report.skipped)


def test_litellm_per_token_prices_become_exact_per_million_prices(litellm_file):
    report = prices_import(actor=SYSTEM, path_or_data=str(litellm_file))
    assert report.format == "litellm"
    mini = Price.objects.get(model="gpt-4o-mini")
    assert mini.input_price == Decimal("0.15")
    assert mini.output_price == Decimal("0.6")
    assert mini.cached_input_price == Decimal("0.075")
    assert mini.cache_write_price is None
    assert mini.context_window == 128_000
    assert mini.max_output_tokens == 16_384
    assert set(mini.capabilities) == {"chat", "streaming", "tools", "vision", "json_mode"}
    assert mini.source == "litellm"
    sonnet = Price.objects.get(model="claude-sonnet-4-5-20250929")
    assert (sonnet.input_price, sonnet.output_price) == (Decimal(3), Decimal(15))
    assert sonnet.cache_write_price == Decimal("3.75")
    assert sonnet.cached_input_price == Decimal("0.3")
    assert Price.objects.get(model="o4-mini").reasoning_price == Decimal("4.4")
    exact = Price.objects.get(model="gpt-4.1-mini")
    assert (exact.input_price, exact.output_price) == (Decimal("0.4"), Decimal("1.6"))
    assert exact.cached_input_price == Decimal("0.1")
    embedding = Price.objects.get(model="text-embedding-3-small")
    assert embedding.input_price == Decimal("0.02")
    assert embedding.capabilities == ["embeddings"]


def test_decoded_floats_convert_as_exactly_as_the_json_text():
    table = pricing.parse(json.loads(LITELLM_TEXT), format="litellm")
    assert table.by_model["gpt-4o-mini"].prices.input == Decimal("0.15")
    assert table.by_model["claude-sonnet-4-5-20250929"].prices.cache_write == Decimal("3.75")
    mini = table.by_model["gpt-4.1-mini"].prices
    assert (mini.input, mini.output, mini.cached_input) == (
        Decimal("0.4"),
        Decimal("1.6"),
        Decimal("0.1"),
    )
    # Where floats would have drifted:
    assert 4e-07 * 1_000_000 != 0.4
    assert 1.6e-06 * 1_000_000 != 1.6


def test_bad_litellm_entries_are_reported_and_the_rest_imported(litellm_file):
    report = prices_import(actor=SYSTEM, path_or_data=litellm_file, format="litellm")
    skipped = _skipped(report)
    assert set(skipped) == {
        "sample_spec",
        "dall-e-3",
        "whisper-1",
        "broken-price",
        "negative",
        "no-output",
        "not-an-object",
    }
    assert "not a number" in skipped["broken-price"]
    assert "negative" in skipped["negative"]
    assert "image_generation" in skipped["dall-e-3"]
    assert (report.added, report.updated, report.unchanged) == (6, 0, 0)
    again = prices_import(actor=SYSTEM, path_or_data=litellm_file)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 6)


def test_an_import_updates_changed_rows(litellm_file, tmp_path):
    prices_import(actor=SYSTEM, path_or_data=litellm_file)
    data = json.loads(LITELLM_TEXT)
    data["gpt-4o-mini"]["input_cost_per_token"] = 2e-07
    report = prices_import(actor=SYSTEM, path_or_data=data)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 5)
    assert Price.objects.get(model="gpt-4o-mini").input_price == Decimal("0.2")


def test_the_shipped_table_is_dated_and_imports_in_our_format():
    table = pricing.shipped()
    assert table.updated == "2026-11-01"
    assert table.source == "lumina-2026-11-01"
    assert table.skipped == ()
    raw = json.loads(pricing.SHIPPED_PATH.read_text())
    assert "check" in raw["source"]
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "text-embedding-3-small"):
        assert model in table.by_model, model
    assert table.by_model["o3"].prices.reasoning is not None
    sonnet = table.by_model["claude-sonnet-4-5"].prices
    assert sonnet.cache_write is not None
    assert sonnet.cached_input is not None
    report = prices_import(actor=SYSTEM, path_or_data=pricing.SHIPPED_PATH)
    assert report.format == "lumina"
    assert report.added == len(table.by_model)
    assert report.skipped == ()


def test_bad_lumina_entries_are_reported():
    data = {
        "format": "lumina-prices",
        "updated": "2027-01-01",
        "models": {
            "good": {"input": "1", "output": "2"},
            "no-output": {"input": "1"},
            "odd-capability": {"input": "1", "output": "2", "capabilities": ["telepathy"]},
            "negative": {"input": "-1", "output": "2"},
        },
    }
    report = prices_import(actor=SYSTEM, path_or_data=data, format="lumina")
    assert report.added == 1
    assert report.source == "lumina-2027-01-01"
    assert set(_skipped(report)) == {"no-output", "odd-capability", "negative"}
    assert "telepathy" in _skipped(report)["odd-capability"]


@pytest.mark.parametrize(
    ("content", "fmt", "field"),
    [
        ("{not json", "auto", "file"),
        ("[1, 2]", "auto", "file"),
        ('{"x": {"y": 1}}', "auto", "format"),
        ('{"gpt": {}}', "yaml", "format"),
    ],
)
def test_an_unreadable_table_is_refused_naming_the_field(tmp_path, content, fmt, field):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ApplicationError) as excinfo:
        prices_import(actor=SYSTEM, path_or_data=path, format=fmt)
    assert field in excinfo.value.fields
    assert Price.objects.count() == 0


def test_a_missing_file_names_the_file(tmp_path):
    with pytest.raises(ApplicationError) as excinfo:
        prices_import(actor=SYSTEM, path_or_data=tmp_path / "nope.json")
    assert "file" in excinfo.value.fields


def test_a_viewer_may_not_import_prices(litellm_file):
    with pytest.raises(PermissionDeniedError):
        prices_import(actor=actor_with_role("Viewer"), path_or_data=litellm_file)
    assert Price.objects.count() == 0


def test_table_priced_models_take_new_prices_and_manual_ones_keep_theirs(litellm_file):
    provider = provider_create(
        actor=SYSTEM, name="openai-main", kind="openai", base_url="https://api.openai.com/v1"
    )
    shipped = deployment_create(actor=SYSTEM, provider_id=provider.id, name="gpt-4o-mini")
    manual = deployment_create(
        actor=SYSTEM,
        provider_id=provider.id,
        name="mine",
        upstream_model="gpt-4o-mini",
        input_price="9",
        output_price="9",
    )
    assert shipped.price_source == "lumina-2026-11-01"
    data = json.loads(LITELLM_TEXT)
    data["gpt-4o-mini"]["input_cost_per_token"] = 1e-07
    report = prices_import(actor=SYSTEM, path_or_data=data)
    assert report.deployments_repriced == 1
    repriced = deployment_get(deployment_id=shipped.id)
    assert repriced.prices.input == Decimal("0.1")
    assert repriced.price_source == "litellm"
    assert deployment_get(deployment_id=manual.id).prices.input == Decimal(9)
    updates = [
        e for e in events_named("providers.ProviderUpdated") if e.payload["deployment_id"] is None
    ]
    assert len(updates) == 1
    # And the hot path sees the new price at once.
    [model] = catalogue().resolve("openai-main/gpt-4o-mini")
    assert model.prices.cost(Usage(input_tokens=1_000_000)) == Decimal("0.1")


def test_new_models_prefer_imported_prices_for_their_providers_kind(litellm_file):
    prices_import(actor=SYSTEM, path_or_data=litellm_file)
    azure = provider_create(
        actor=SYSTEM,
        name="azure-eu",
        kind="azure_openai",
        base_url="https://eu.openai.azure.com",
        api_version="2024-10-21",
    )
    model = deployment_create(actor=SYSTEM, provider_id=azure.id, name="gpt-4o")
    assert model.price_source == "litellm"  # LiteLLM's "azure/gpt-4o"
    assert model.context_window == 128_000
    openai = provider_create(
        actor=SYSTEM, name="openai", kind="openai", base_url="https://api.openai.com/v1"
    )
    embed = deployment_create(actor=SYSTEM, provider_id=openai.id, name="text-embedding-3-small")
    assert embed.capabilities == {Capability.EMBEDDINGS}
    assert embed.prices.input == Decimal("0.02")
