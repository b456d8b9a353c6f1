"""factory_boy factories for the provider registry's rows.

They write rows directly (no events), then drop the catalogue so the next read sees
them. ``ProviderFactory(api_key="sk-…")`` stores the key encrypted, as the services do.
"""

from __future__ import annotations

from decimal import Decimal

import factory

from lumina.providers.models.registry import Deployment, Provider
from lumina.providers.selectors.registry import catalogue_invalidate
from lumina.providers.types import Capability, ProviderKind
from lumina.security.api import encrypt_secret


class _InvalidatesCatalogue(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True
        skip_postgeneration_save = True

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        super()._after_postgeneration(instance, create, results)
        if create:
            catalogue_invalidate()


class ProviderFactory(_InvalidatesCatalogue):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = ProviderKind.OPENAI_COMPATIBLE.value
    base_url = factory.Sequence(lambda n: f"http://127.0.0.1:9/provider-{n}/v1")
    enabled = True
    priority = 0
    weight = 1

    @factory.post_generation
    def api_key(self, create, extracted, **kwargs):
        """``api_key="…"`` stores that key, sealed for this provider."""
        if extracted:
            self.api_key = encrypt_secret(extracted, owner=self.secret_owner)
            if create:
                self.save(update_fields=["api_key"])


class DeploymentFactory(_InvalidatesCatalogue):
    class Meta:
        model = Deployment

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    upstream_model = factory.LazyAttribute(lambda d: d.name)
    capabilities = factory.LazyFunction(lambda: [Capability.CHAT.value, Capability.STREAMING.value])
    context_window = 128_000
    input_price = Decimal("0.15")
    output_price = Decimal("0.60")
    price_source = "manual"
    enabled = True
