"""REST endpoints for the audit log under ``/api/v1/audit/``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.http.actors import actor_of
from lumina.security.models.audit import AuditEntry
from lumina.security.selectors.audit import audit_entry_list
from lumina.security.services.audit import audit_verify
from lumina.security.services.authorization import require

AUDIT_READ_ACTION = "security.audit.read"


class AuditEntryListApi(ListAPIView):
    """Audit entries, newest first, filtered by action, actor, outcome and time."""

    @extend_schema_serializer(component_name="AuditEntryFilter")
    class FilterSerializer(serializers.Serializer):
        action = serializers.CharField(required=False, max_length=200)
        actor_id = serializers.UUIDField(required=False)
        outcome = serializers.ChoiceField(choices=AuditEntry.Outcome.choices, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

        def validate(self, attrs: dict) -> dict:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and until < since:
                raise serializers.ValidationError({"until": ["must not be before since"]})
            return attrs

    @extend_schema_serializer(component_name="AuditEntry")
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = AuditEntry
            fields = (
                "sequence", "event_id", "event_version", "occurred_at", "recorded_at", "action",
                "actor_id", "ip_address", "outcome", "target", "details", "prev_hash", "hash",
            )  # fmt: skip

    serializer_class = OutputSerializer

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request, *args, **kwargs):
        require(actor_of(request), AUDIT_READ_ACTION)
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return audit_entry_list(**filters.validated_data)


class AuditVerifyApi(APIView):
    """Walk the whole chain and report whether it is intact, or where it first breaks."""

    @extend_schema_serializer(component_name="AuditVerifyOutput")
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        checked = serializers.IntegerField()
        first_broken_seq = serializers.IntegerField(allow_null=True)
        reason = serializers.CharField()
        head_hash = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        require(actor_of(request), AUDIT_READ_ACTION)
        return Response(self.OutputSerializer(audit_verify()).data)


urlpatterns = [
    path("audit/entries", AuditEntryListApi.as_view(), name="audit-entries"),
    path("audit/verify", AuditVerifyApi.as_view(), name="audit-verify"),
]
