"""``POST /providers/select``: which deployments would serve a request, best first, and why."""

from __future__ import annotations

import math
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.providers.resilience import circuit_states, latency_stats
from lumina.providers.selectors.registry import catalogue
from lumina.providers.selectors.selection import AUTO, select
from lumina.providers.types import Capability, Needs, Strategy
from lumina.security.api import actor_of, require

CAPABILITIES = [capability.value for capability in Capability]
STRATEGIES = [strategy.value for strategy in Strategy]


class _Price(serializers.DecimalField):
    """US dollars per million tokens, as a decimal string without trailing zeros."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", "US dollars per million tokens.")
        super().__init__(max_digits=20, decimal_places=10, **kwargs)

    def to_representation(self, value):
        if value is None:
            return None
        return format(Decimal(value).normalize(), "f")


class _Score(serializers.FloatField):
    """A float, or null when it is not finite (an unmeasured latency)."""

    def to_representation(self, value):
        return None if value is None or not math.isfinite(value) else float(value)


class PricesOutput(serializers.Serializer):
    input = _Price()
    output = _Price()
    cached_input = _Price(allow_null=True, help_text="Null: priced as input.")
    cache_write = _Price(allow_null=True, help_text="Null: priced as input.")
    reasoning = _Price(allow_null=True, help_text="Null: priced as output.")


class CandidateOutput(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 is tried first.")
    score = _Score(
        allow_null=True,
        help_text=(
            "The strategy's measure: cheapest, estimated dollars (or price per million); "
            "fastest, milliseconds (null: not measured yet); balanced, the 0–1 mix plus "
            "error rate, lower is better; priority, the priority; weighted, the "
            "round-robin's current weight."
        ),
    )
    reason = serializers.CharField(help_text="Why it is ranked here.")
    deployment_id = serializers.UUIDField(source="deployment.id")
    provider = serializers.CharField(source="deployment.provider.name")
    model = serializers.CharField(source="deployment.name")
    qualified_name = serializers.CharField(source="deployment.qualified_name")
    prices = PricesOutput(source="deployment.prices")


class RejectionOutput(serializers.Serializer):
    deployment_id = serializers.UUIDField(source="deployment.id")
    provider = serializers.CharField(source="deployment.provider.name")
    model = serializers.CharField(source="deployment.name")
    qualified_name = serializers.CharField(source="deployment.qualified_name")
    reason = serializers.CharField(help_text="Why it was left out.")


class SelectionOutput(serializers.Serializer):
    model = serializers.CharField(help_text="The model as requested.")
    strategy = serializers.ChoiceField(choices=STRATEGIES)
    candidates = CandidateOutput(many=True, help_text="Best first; empty when none fits.")
    rejections = RejectionOutput(many=True)


class SelectApi(APIView):
    """Rank the deployments that could serve a request, with the reason for each.

    Nothing is called: this is the decision the completion path would make now,
    including open circuits and measured latencies. No deployment fitting is an answer
    (empty ``candidates``, every reason in ``rejections``); an unknown model is a 404.
    """

    error_statuses = (404,)

    @extend_schema_serializer(component_name="ProviderSelectInput")
    class InputSerializer(serializers.Serializer):
        model = serializers.CharField(
            max_length=300,
            default=AUTO,
            help_text=(
                "A model name or alias, 'provider/name', or 'lumina/auto' (every model), "
                "optionally with a strategy: 'lumina/auto:cheapest'."
            ),
        )
        capabilities = serializers.ListField(
            child=serializers.ChoiceField(choices=CAPABILITIES),
            required=False,
            max_length=len(CAPABILITIES),
            help_text="What the request needs; default ['chat'].",
        )
        min_context_window = serializers.IntegerField(min_value=0, default=0)
        max_price = serializers.DecimalField(
            max_digits=20,
            decimal_places=10,
            min_value=Decimal(0),
            required=False,
            allow_null=True,
            help_text="Highest input+output price, US dollars per million tokens.",
        )
        strategy = serializers.ChoiceField(
            choices=STRATEGIES,
            default=Strategy.BALANCED.value,
            help_text="A strategy in the model name ('lumina/auto:fastest') wins.",
        )
        tags = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, max_length=50
        )
        estimated_input_tokens = serializers.IntegerField(
            min_value=0, max_value=100_000_000, default=0
        )
        estimated_output_tokens = serializers.IntegerField(
            min_value=0, max_value=100_000_000, default=0
        )

    @extend_schema(request=InputSerializer, responses=SelectionOutput)
    def post(self, request):
        require(actor_of(request), "providers.read")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        needs = Needs(
            capabilities=frozenset(Capability(c) for c in values.get("capabilities") or ["chat"]),
            min_context_window=values["min_context_window"],
            max_price=values.get("max_price"),
            strategy=Strategy(values["strategy"]),
            tags=frozenset(values.get("tags") or ()),
            estimated_input_tokens=values["estimated_input_tokens"],
            estimated_output_tokens=values["estimated_output_tokens"],
        )
        snapshot = catalogue()
        selection = select(
            catalogue=snapshot,
            model=values["model"],
            needs=needs,
            # The breaker is async (its Redis client lives on a loop): one short loop here.
            breaker_states=async_to_sync(circuit_states)(snapshot.deployments),
            stats=latency_stats(),
            allow_empty=True,
        )
        return Response(SelectionOutput(selection).data)


urlpatterns = [
    path("providers/select", SelectApi.as_view(), name="providers-select"),
]
