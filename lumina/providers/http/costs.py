"""Cost reports, the raw usage ledger and budgets under ``/api/v1/providers/``.

Everyone sees their own usage and budgets; everyone's needs ``providers.usage.read_all``
(``selectors/visibility.py``). Creating, changing and deleting budgets needs
``providers.change``.
"""

from __future__ import annotations

import datetime as dt

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.providers.models.usage import Budget
from lumina.providers.selectors.budgets import budget_get_visible, budget_list
from lumina.providers.selectors.costs import GROUPS, cost_report, cost_total, usage_list
from lumina.providers.selectors.visibility import usage_user_visible
from lumina.providers.services.budgets import (
    BUDGETS_MANAGE,
    budget_create,
    budget_delete,
    budget_update,
)
from lumina.providers.types import UsageStatus
from lumina.security.api import actor_of, require

DEFAULT_USAGE_WINDOW = dt.timedelta(days=1)


# -- cost reports ------------------------------------------------------------------------


@extend_schema_serializer(component_name="CostRow")
class CostRowOutput(serializers.Serializer):
    day = serializers.DateField(allow_null=True)
    user_id = serializers.UUIDField(allow_null=True)
    token_id = serializers.UUIDField(allow_null=True)
    provider_id = serializers.UUIDField(allow_null=True)
    provider_name = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    operation = serializers.CharField(allow_null=True)
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Requests that did not end ok.")
    estimated = serializers.IntegerField(help_text="Requests whose tokens Lumina counted.")
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10, help_text="US dollars.")


class CostReportApi(APIView):
    """Usage and cost totals over a range of UTC days, grouped as asked, from daily rollups."""

    class FilterSerializer(serializers.Serializer):
        since = serializers.DateField(help_text="First UTC day, YYYY-MM-DD.")
        until = serializers.DateField(required=False, help_text="Last UTC day (default today).")
        group_by = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text=f"Comma-separated subset of {', '.join(GROUPS)}.",
        )
        user = serializers.UUIDField(required=False)
        token = serializers.UUIDField(required=False)

        def validate_group_by(self, value: str) -> list[str]:
            names = [name.strip() for name in value.split(",") if name.strip()]
            unknown = [name for name in names if name not in GROUPS]
            if unknown:
                raise serializers.ValidationError(
                    f"Unknown {', '.join(unknown)}; choose from {', '.join(GROUPS)}."
                )
            return list(dict.fromkeys(names))

        def validate(self, attrs: dict) -> dict:
            attrs.setdefault("until", timezone.now().date())
            if attrs["until"] < attrs["since"]:
                raise serializers.ValidationError({"until": ["Must not be before since."]})
            return attrs

    @extend_schema_serializer(component_name="CostReport")
    class OutputSerializer(serializers.Serializer):
        since = serializers.DateField()
        until = serializers.DateField()
        group_by = serializers.ListField(child=serializers.CharField())
        rows = CostRowOutput(many=True)
        totals = CostRowOutput()

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        rows = cost_report(
            since=data["since"],
            until=data["until"],
            group_by=data["group_by"],
            user_id=usage_user_visible(actor_of(request), data.get("user")),
            token_id=data.get("token"),
        )
        body = {
            "since": data["since"],
            "until": data["until"],
            "group_by": data["group_by"],
            "rows": rows,
            "totals": cost_total(rows),
        }
        return Response(self.OutputSerializer(body).data)


# -- the raw ledger ----------------------------------------------------------------------


@extend_schema_serializer(component_name="UsageRecord")
class UsageRecordOutput(serializers.Serializer):
    id = serializers.UUIDField()
    occurred_at = serializers.DateTimeField()
    request_id = serializers.CharField()
    operation = serializers.CharField()
    status = serializers.CharField()
    stream = serializers.BooleanField()
    requested_model = serializers.CharField()
    user_id = serializers.UUIDField(allow_null=True)
    token_id = serializers.UUIDField(allow_null=True)
    provider_id = serializers.UUIDField(allow_null=True)
    provider_name = serializers.CharField()
    deployment_id = serializers.UUIDField(allow_null=True)
    model = serializers.CharField()
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    estimated = serializers.BooleanField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=10, help_text="US dollars.")
    attempts = serializers.IntegerField()
    latency_ms = serializers.FloatField()
    ttft_ms = serializers.FloatField(allow_null=True)
    error_code = serializers.CharField()
    attempt_log = serializers.ListField(
        child=serializers.DictField(),
        help_text="Every call to a provider, when there was more than one or it failed.",
    )


class UsageListApi(GenericAPIView):
    """Raw usage records, newest first, within a time range (default: the last 24 hours)."""

    serializer_class = UsageRecordOutput

    class FilterSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False, help_text="Default: until - 24 h.")
        until = serializers.DateTimeField(required=False, help_text="Exclusive; default now.")
        user = serializers.UUIDField(required=False)
        token = serializers.UUIDField(required=False)
        provider = serializers.UUIDField(required=False)
        model = serializers.CharField(required=False, max_length=200)
        status = serializers.ChoiceField(choices=[s.value for s in UsageStatus], required=False)
        operation = serializers.CharField(required=False, max_length=32)

        def validate(self, attrs: dict) -> dict:
            attrs.setdefault("until", timezone.now())
            attrs.setdefault("since", attrs["until"] - DEFAULT_USAGE_WINDOW)
            if attrs["until"] < attrs["since"]:
                raise serializers.ValidationError({"until": ["Must not be before since."]})
            return attrs

    @extend_schema(parameters=[FilterSerializer], responses=UsageRecordOutput(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        records = usage_list(
            since=data["since"],
            until=data["until"],
            user_id=usage_user_visible(actor_of(request), data.get("user")),
            token_id=data.get("token"),
            provider_id=data.get("provider"),
            model=data.get("model"),
            status=data.get("status"),
            operation=data.get("operation"),
        )
        page = self.paginate_queryset(records)
        return self.get_paginated_response(UsageRecordOutput(page, many=True).data)


# -- budgets -----------------------------------------------------------------------------


@extend_schema_serializer(component_name="Budget")
class BudgetOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    scope = serializers.CharField()
    subject_id = serializers.UUIDField()
    period = serializers.CharField()
    limit_usd = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    requests_per_minute = serializers.IntegerField(allow_null=True)
    tokens_per_minute = serializers.IntegerField(allow_null=True)
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class BudgetInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    scope = serializers.ChoiceField(choices=Budget.Scope.choices)
    subject_id = serializers.UUIDField(help_text="The user's or the API token's id.")
    period = serializers.ChoiceField(choices=Budget.Period.choices, required=False)
    limit_usd = serializers.DecimalField(
        max_digits=14, decimal_places=4, min_value=0, required=False, allow_null=True
    )
    requests_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tokens_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)


class BudgetListCreateApi(GenericAPIView):
    """Budgets (yours, or everyone's with ``providers.usage.read_all``); create one
    (``providers.change``)."""

    serializer_class = BudgetOutput

    class FilterSerializer(serializers.Serializer):
        scope = serializers.ChoiceField(choices=Budget.Scope.choices, required=False)
        subject = serializers.UUIDField(required=False)

    @extend_schema_serializer(component_name="BudgetCreateInput")
    class InputSerializer(BudgetInput):
        pass

    @extend_schema(parameters=[FilterSerializer], responses=BudgetOutput(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        budgets = budget_list(
            visible_to=actor_of(request),
            scope=filters.validated_data.get("scope"),
            subject_id=filters.validated_data.get("subject"),
        )
        page = self.paginate_queryset(budgets)
        return self.get_paginated_response(BudgetOutput(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: BudgetOutput})
    def post(self, request):
        actor = actor_of(request)
        require(actor, BUDGETS_MANAGE)  # before reading the body
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        budget = budget_create(actor=actor, **data.validated_data)
        return Response(BudgetOutput(budget).data, status=201)


class BudgetDetailApi(APIView):
    """One budget; PATCH changes the given fields, DELETE removes it."""

    @extend_schema_serializer(component_name="BudgetUpdateInput")
    class PatchSerializer(BudgetInput):
        pass

    @extend_schema(responses=BudgetOutput)
    def get(self, request, budget_id):
        budget = budget_get_visible(budget_id=budget_id, actor=actor_of(request))
        return Response(BudgetOutput(budget).data)

    @extend_schema(request=PatchSerializer, responses=BudgetOutput)
    def patch(self, request, budget_id):
        actor = actor_of(request)
        require(actor, BUDGETS_MANAGE)  # before reading the body
        data = self.PatchSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        budget = budget_update(actor=actor, budget_id=budget_id, **data.validated_data)
        return Response(BudgetOutput(budget).data)

    @extend_schema(responses={204: None})
    def delete(self, request, budget_id):
        budget_delete(actor=actor_of(request), budget_id=budget_id)
        return Response(status=204)


urlpatterns = [
    path("providers/costs", CostReportApi.as_view(), name="providers-costs"),
    path("providers/usage", UsageListApi.as_view(), name="providers-usage"),
    path("providers/budgets", BudgetListCreateApi.as_view(), name="providers-budgets"),
    path("providers/budgets/<uuid:budget_id>", BudgetDetailApi.as_view(), name="providers-budget"),
]
