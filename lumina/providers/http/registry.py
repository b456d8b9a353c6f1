"""REST for the registry: providers, their models, and the capabilities of every model.

An API key goes in (on create, or PATCH to replace; ``null`` removes it) and never
comes out: responses carry only ``has_api_key``.
"""

from __future__ import annotations

from decimal import Decimal

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import NotFoundError
from lumina.providers.selectors.registry import (
    capabilities_list,
    deployment_get,
    deployment_list,
    provider_get,
    provider_list,
)
from lumina.providers.services.registry import (
    API_KEY_UNCHANGED,
    MAX_API_KEY_LENGTH,
    deployment_create,
    deployment_delete,
    deployment_update,
    provider_create,
    provider_delete,
    provider_update,
)
from lumina.providers.types import Capability, ProviderKind
from lumina.security.api import actor_of, require

KINDS = [kind.value for kind in ProviderKind]
CAPABILITIES = [capability.value for capability in Capability]


def _read(request) -> None:
    require(actor_of(request), "providers.read")


def _provider_or_404(provider_id):
    provider = provider_get(provider_id=provider_id)
    if provider is None:
        raise NotFoundError("No such provider.", fields={"provider": ["not found"]})
    return provider


# --- Fields -----------------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class SortedStrings(serializers.Field):
    """A set of strings, sorted so responses are stable."""

    def to_representation(self, value):
        return sorted(str(item) for item in value)


class PriceField(serializers.DecimalField):
    """US dollars per million tokens, as a decimal string without trailing zeros."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", "US dollars per million tokens.")
        super().__init__(max_digits=20, decimal_places=10, min_value=Decimal(0), **kwargs)

    def to_representation(self, value):
        if value is None:
            return None
        return format(Decimal(value).normalize(), "f")


# --- Output -----------------------------------------------------------------------------


class ProviderOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=KINDS)
    base_url = serializers.CharField()
    has_api_key = serializers.BooleanField(help_text="The key itself is never returned.")
    enabled = serializers.BooleanField()
    priority = serializers.IntegerField(help_text="Higher is tried first by 'priority'.")
    weight = serializers.IntegerField(help_text="Share of traffic under 'weighted'.")
    max_concurrency = serializers.IntegerField(help_text="Requests in flight at most.")
    connect_timeout = serializers.FloatField(help_text="Seconds.")
    read_timeout = serializers.FloatField(help_text="Seconds.")
    api_version = serializers.CharField(allow_null=True, help_text="Azure OpenAI only.")
    tags = SortedStrings()
    revision = serializers.IntegerField(help_text="Bumped on every change.")


class VerifiedOutput(serializers.Serializer):
    capability = serializers.CharField()
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    checked_at = serializers.CharField(allow_null=True, help_text="ISO 8601.")
    error = serializers.CharField()


class ModelOutput(serializers.Serializer):
    id = serializers.UUIDField()
    provider_id = serializers.UUIDField(source="provider.id")
    provider_name = serializers.CharField(source="provider.name")
    qualified_name = serializers.CharField(help_text="provider/name: exactly this model.")
    name = serializers.CharField(help_text="The name clients ask for.")
    upstream_model = serializers.CharField(help_text="The name the provider knows it by.")
    aliases = serializers.ListField(child=serializers.CharField())
    capabilities = SortedStrings()
    context_window = serializers.IntegerField()
    max_output_tokens = serializers.IntegerField(allow_null=True)
    input_price = PriceField(source="prices.input")
    cached_input_price = PriceField(source="prices.cached_input", allow_null=True)
    cache_write_price = PriceField(source="prices.cache_write", allow_null=True)
    output_price = PriceField(source="prices.output")
    reasoning_price = PriceField(source="prices.reasoning", allow_null=True)
    price_source = serializers.CharField(
        help_text='"manual", or the table the prices came from, e.g. "lumina-2026-11-01".'
    )
    enabled = serializers.BooleanField()
    tags = SortedStrings()
    verified = VerifiedOutput(many=True, help_text="What the last probe found, per capability.")


class CapabilitiesOutput(serializers.Serializer):
    model_id = serializers.UUIDField(source="deployment_id")
    provider_id = serializers.UUIDField()
    provider_name = serializers.CharField()
    name = serializers.CharField()
    qualified_name = serializers.CharField()
    enabled = serializers.BooleanField(help_text="The model and its provider are enabled.")
    declared = serializers.ListField(child=serializers.CharField())
    verified = VerifiedOutput(many=True)


# --- Input ------------------------------------------------------------------------------


def _tags(**kwargs):
    return serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, **kwargs
    )


class ProviderUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    kind = serializers.ChoiceField(choices=KINDS, required=False)
    base_url = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="May be empty for 'local'."
    )
    api_key = serializers.CharField(
        max_length=MAX_API_KEY_LENGTH,
        required=False,
        allow_null=True,
        write_only=True,
        trim_whitespace=False,
        help_text="Write-only. Leave out to keep the stored key; null removes it.",
    )
    enabled = serializers.BooleanField(required=False)
    priority = serializers.IntegerField(required=False)
    weight = serializers.IntegerField(required=False, min_value=1)
    max_concurrency = serializers.IntegerField(required=False, min_value=1)
    connect_timeout = serializers.FloatField(required=False)
    read_timeout = serializers.FloatField(required=False)
    api_version = serializers.CharField(
        max_length=40, required=False, allow_blank=True, allow_null=True
    )
    tags = _tags()


class ProviderCreateInput(ProviderUpdateInput):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=KINDS)
    api_key = serializers.CharField(
        max_length=MAX_API_KEY_LENGTH,
        required=False,
        allow_null=True,
        write_only=True,
        trim_whitespace=False,
        help_text="Write-only: stored encrypted, never returned.",
    )


class ModelUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    upstream_model = serializers.CharField(max_length=200, required=False)
    aliases = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=CAPABILITIES), required=False
    )
    context_window = serializers.IntegerField(min_value=1, required=False)
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    input_price = PriceField(required=False)
    cached_input_price = PriceField(required=False, allow_null=True)
    cache_write_price = PriceField(required=False, allow_null=True)
    output_price = PriceField(required=False)
    reasoning_price = PriceField(required=False, allow_null=True)
    price_source = serializers.CharField(max_length=100, required=False)
    enabled = serializers.BooleanField(required=False)
    tags = _tags()


class ModelCreateInput(ModelUpdateInput):
    name = serializers.CharField(max_length=200, help_text="The name clients ask for.")
    upstream_model = serializers.CharField(
        max_length=200, required=False, help_text="Defaults to name."
    )
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=CAPABILITIES),
        required=False,
        help_text="Defaults to the price table's, else chat and streaming.",
    )


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


# --- Views ------------------------------------------------------------------------------


class ProviderListCreateApi(GenericAPIView):
    """Registered providers; register one."""

    serializer_class = ProviderOutput

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=KINDS, required=False)
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=KINDS),
            OpenApiParameter("enabled", OpenApiTypes.BOOL),
        ],
        responses=ProviderOutput(many=True),
    )
    def get(self, request):
        _read(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = provider_list(
            kind=filters.validated_data.get("kind"), enabled=filters.validated_data["enabled"]
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ProviderOutput(page, many=True).data)

    @extend_schema(request=ProviderCreateInput, responses={201: ProviderOutput})
    def post(self, request):
        data = _valid(ProviderCreateInput, request)
        provider = provider_create(actor=actor_of(request), **data)
        return Response(ProviderOutput(provider).data, status=201)


class ProviderDetailApi(APIView):
    """One provider; PATCH changes it (and its key), DELETE removes it with its models."""

    @extend_schema(responses=ProviderOutput)
    def get(self, request, provider_id):
        _read(request)
        return Response(ProviderOutput(_provider_or_404(provider_id)).data)

    @extend_schema(request=ProviderUpdateInput, responses=ProviderOutput)
    def patch(self, request, provider_id):
        data = _valid(ProviderUpdateInput, request)
        api_key = data.pop("api_key", API_KEY_UNCHANGED)
        provider = provider_update(
            actor=actor_of(request), provider_id=provider_id, api_key=api_key, **data
        )
        return Response(ProviderOutput(provider).data)

    @extend_schema(responses={204: None})
    def delete(self, request, provider_id):
        provider_delete(actor=actor_of(request), provider_id=provider_id)
        return Response(status=204)


class ModelListCreateApi(GenericAPIView):
    """A provider's models; add one (prices default to the price tables' for its model)."""

    serializer_class = ModelOutput

    @extend_schema(responses=ModelOutput(many=True))
    def get(self, request, provider_id):
        _read(request)
        _provider_or_404(provider_id)
        page = self.paginate_queryset(deployment_list(provider_id=provider_id))
        return self.get_paginated_response(ModelOutput(page, many=True).data)

    @extend_schema(request=ModelCreateInput, responses={201: ModelOutput})
    def post(self, request, provider_id):
        data = _valid(ModelCreateInput, request)
        model = deployment_create(actor=actor_of(request), provider_id=provider_id, **data)
        return Response(ModelOutput(model).data, status=201)


class ModelDetailApi(APIView):
    """One model of a provider; PATCH changes it, DELETE removes it."""

    @extend_schema(responses=ModelOutput)
    def get(self, request, provider_id, model_id):
        _read(request)
        model = deployment_get(deployment_id=model_id, provider_id=provider_id)
        if model is None:
            raise NotFoundError("No such model.", fields={"model": ["not found"]})
        return Response(ModelOutput(model).data)

    @extend_schema(request=ModelUpdateInput, responses=ModelOutput)
    def patch(self, request, provider_id, model_id):
        data = _valid(ModelUpdateInput, request)
        model = deployment_update(
            actor=actor_of(request), deployment_id=model_id, provider_id=provider_id, **data
        )
        return Response(ModelOutput(model).data)

    @extend_schema(responses={204: None})
    def delete(self, request, provider_id, model_id):
        deployment_delete(actor=actor_of(request), deployment_id=model_id, provider_id=provider_id)
        return Response(status=204)


class CapabilitiesApi(GenericAPIView):
    """Per model: the capabilities declared, and what the probe verified, with latency."""

    serializer_class = CapabilitiesOutput

    class FilterSerializer(serializers.Serializer):
        provider = serializers.UUIDField(required=False)

    @extend_schema(
        parameters=[OpenApiParameter("provider", OpenApiTypes.UUID, description="Provider id.")],
        responses=CapabilitiesOutput(many=True),
    )
    def get(self, request):
        _read(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = capabilities_list(provider_id=filters.validated_data.get("provider"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CapabilitiesOutput(page, many=True).data)


urlpatterns = [
    path("providers", ProviderListCreateApi.as_view(), name="providers"),
    path("providers/capabilities", CapabilitiesApi.as_view(), name="providers-capabilities"),
    path("providers/<uuid:provider_id>", ProviderDetailApi.as_view(), name="provider"),
    path(
        "providers/<uuid:provider_id>/models",
        ModelListCreateApi.as_view(),
        name="provider-models",
    ),
    path(
        "providers/<uuid:provider_id>/models/<uuid:model_id>",
        ModelDetailApi.as_view(),
        name="provider-model",
    ),
]
