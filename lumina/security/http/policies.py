"""REST endpoints for policies under ``/api/v1/policies/``: CRUD, versions, schema, evaluate."""

from __future__ import annotations

import json

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.permissions import catalogue
from lumina.security import cedar
from lumina.security.http.actors import actor_of
from lumina.security.http.authorization import Authorized
from lumina.security.selectors import policies as selectors
from lumina.security.services import policies as services
from lumina.security.types import Resource

MANAGE = [Authorized(services.MANAGE)]
POLICY_HELP = "Cedar text: one or more forbid statements (see GET /api/v1/policies/schema)."


class PolicyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    version = serializers.IntegerField(help_text="The version in force.")
    policy = serializers.CharField(source="cedar", help_text="Cedar text of that version.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PolicyVersionOutput(serializers.Serializer):
    version = serializers.IntegerField()
    policy = serializers.CharField(source="cedar")
    created_by = serializers.UUIDField(source="created_by_id", allow_null=True)
    created_at = serializers.DateTimeField()


class PolicyListApi(ListAPIView):
    """Policies by name (GET); create one (POST), which becomes its version 1."""

    permission_classes = MANAGE
    serializer_class = PolicyOutput

    @extend_schema_serializer(component_name="PolicyCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=services.MAX_NAME_CHARS)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        enabled = serializers.BooleanField(required=False, default=True)
        policy = serializers.CharField(
            max_length=services.MAX_POLICY_CHARS, trim_whitespace=False, help_text=POLICY_HELP
        )

    def get_queryset(self):
        return selectors.policy_list()

    @extend_schema(request=InputSerializer, responses={201: PolicyOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = dict(data.validated_data)
        policy = services.policy_create(
            actor=actor_of(request), cedar_text=given.pop("policy"), **given
        )
        return Response(PolicyOutput(selectors.policy_get(policy_id=policy.id)).data, status=201)


class PolicyDetailApi(APIView):
    """One policy: read, change (new Cedar text makes a new version), delete."""

    permission_classes = MANAGE

    @extend_schema_serializer(component_name="PolicyUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=services.MAX_NAME_CHARS, required=False)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        enabled = serializers.BooleanField(required=False)
        policy = serializers.CharField(
            max_length=services.MAX_POLICY_CHARS,
            trim_whitespace=False,
            required=False,
            help_text=POLICY_HELP,
        )

    @extend_schema(responses=PolicyOutput)
    def get(self, request, policy_id):
        return Response(PolicyOutput(selectors.policy_get(policy_id=policy_id)).data)

    @extend_schema(request=InputSerializer, responses=PolicyOutput)
    def patch(self, request, policy_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = dict(data.validated_data)
        services.policy_update(
            actor=actor_of(request),
            policy_id=policy_id,
            cedar_text=given.pop("policy", None),
            **given,
        )
        return Response(PolicyOutput(selectors.policy_get(policy_id=policy_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, policy_id):
        services.policy_delete(actor=actor_of(request), policy_id=policy_id)
        return Response(status=204)


class PolicyVersionListApi(ListAPIView):
    """Every version of a policy, newest first."""

    permission_classes = MANAGE
    serializer_class = PolicyVersionOutput

    def get_queryset(self):
        return selectors.policy_version_list(policy_id=self.kwargs["policy_id"])


class PolicyVersionDetailApi(APIView):
    """One version of a policy."""

    permission_classes = MANAGE

    @extend_schema(responses=PolicyVersionOutput)
    def get(self, request, policy_id, version):
        row = selectors.policy_version_get(policy_id=policy_id, version=version)
        return Response(PolicyVersionOutput(row).data)


class PolicySchemaApi(APIView):
    """The Cedar schema policies are validated against, in Cedar and JSON syntax."""

    permission_classes = MANAGE

    @extend_schema_serializer(component_name="PolicySchema")
    class OutputSerializer(serializers.Serializer):
        cedar = serializers.CharField()
        json = serializers.JSONField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        actions = tuple(catalogue())
        body = {"cedar": cedar.schema_text(actions), "json": json.loads(cedar.schema_json(actions))}
        return Response(self.OutputSerializer(body).data)


class EvaluateResourceInput(serializers.Serializer):
    type = serializers.CharField(max_length=201, help_text="e.g. 'providers.model'.")
    id = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)
    attributes = serializers.DictField(required=False, default=dict)


class EvaluateContextInput(serializers.Serializer):
    ip = serializers.IPAddressField(required=False, allow_null=True, default=None)
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_null=True,
        default=None,
        help_text="Token scopes, as if calling through an API token; null or absent: a session.",
    )
    caller_context = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    mfa_verified = serializers.BooleanField(required=False, default=False)


class EvaluateRbacOutput(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    rules = serializers.ListField(child=serializers.CharField())
    roles = serializers.ListField(child=serializers.CharField(), help_text="Every role held.")


class EvaluatePoliciesOutput(serializers.Serializer):
    applicable = serializers.ListField(
        child=serializers.CharField(), help_text="Policies (policy:<id>@v<n>) scoped to the action."
    )
    forbidding = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.CharField())


class EvaluateOutput(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    rules = serializers.ListField(child=serializers.CharField(), help_text="What decided.")
    rbac = EvaluateRbacOutput()
    policies = EvaluatePoliciesOutput()


class PolicyEvaluateApi(APIView):
    """What authorize() would decide for a principal, action and resource, and why.

    Nothing is enforced or audited as a refusal: this is a question, not a request.
    """

    permission_classes = MANAGE

    @extend_schema_serializer(component_name="PolicyEvaluateInput")
    class InputSerializer(serializers.Serializer):
        principal = serializers.CharField(
            max_length=300, help_text="A user id or email, or 'system:<context>'."
        )
        action = serializers.CharField(max_length=100, help_text="A permission name.")
        resource = EvaluateResourceInput(required=False, allow_null=True, default=None)
        context = EvaluateContextInput(required=False)

    @extend_schema(request=InputSerializer, responses=EvaluateOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        resource = given["resource"]
        context = given.get("context") or {}
        explanation = services.policy_evaluate(
            actor=actor_of(request),
            principal=given["principal"],
            action=given["action"],
            resource=Resource(resource["type"], resource["id"], resource["attributes"])
            if resource
            else None,
            ip=context.get("ip"),
            scopes=context.get("scopes"),
            caller_context=context.get("caller_context", ""),
            mfa_verified=context.get("mfa_verified", False),
        )
        decision, rbac = explanation.decision, explanation.rbac
        body = {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "rules": decision.rules,
            "rbac": {
                "allowed": rbac.allowed,
                "reason": rbac.reason,
                "rules": rbac.rules,
                "roles": explanation.roles,
            },
            "policies": {
                "applicable": explanation.policies_applicable,
                "forbidding": explanation.policies_forbidding,
                "errors": explanation.policy_errors,
            },
        }
        return Response(EvaluateOutput(body).data)


urlpatterns = [
    path("policies", PolicyListApi.as_view(), name="policies"),
    path("policies/schema", PolicySchemaApi.as_view(), name="policy-schema"),
    path("policies/evaluate", PolicyEvaluateApi.as_view(), name="policy-evaluate"),
    path("policies/<uuid:policy_id>", PolicyDetailApi.as_view(), name="policy"),
    path(
        "policies/<uuid:policy_id>/versions",
        PolicyVersionListApi.as_view(),
        name="policy-versions",
    ),
    path(
        "policies/<uuid:policy_id>/versions/<int:version>",
        PolicyVersionDetailApi.as_view(),
        name="policy-version",
    ),
]
