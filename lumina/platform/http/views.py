"""Operator endpoints for the event outbox: what is pending or failed, and replay.

The outbox holds every context's events, security events included: reading it needs
``platform.events.read`` and replaying ``platform.events.replay``, as ``authorize``
decides (being staff grants neither).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel import bus
from lumina.kernel.errors import NotFoundError
from lumina.kernel.models import OutboxEvent
from lumina.security.api import actor_of, require

READ = "platform.events.read"
REPLAY = "platform.events.replay"


class OutboxEventOutput(serializers.ModelSerializer):
    class Meta:
        model = OutboxEvent
        fields = (
            "id", "name", "version", "kind", "payload", "occurred_at", "created_at",
            "status", "attempts", "last_error", "next_attempt_at", "delivered_at",
        )  # fmt: skip


class OutboxEventListApi(ListAPIView):
    """Outbox events, newest first; ``?status=pending|failed|delivered`` filters."""

    serializer_class = OutboxEventOutput

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=OutboxEvent.Status.choices, required=False)

    def get(self, request, *args, **kwargs):
        require(actor_of(request), READ)
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        rows = OutboxEvent.objects.order_by("-created_at")
        if status := filters.validated_data.get("status"):
            rows = rows.filter(status=status)
        return rows


class OutboxEventReplayApi(APIView):
    """Deliver a pending or failed event again, now, and return its new state."""

    @extend_schema(request=None, responses=OutboxEventOutput)
    def post(self, request, event_id):
        require(actor_of(request), REPLAY)
        if not OutboxEvent.objects.filter(pk=event_id).exists():
            raise NotFoundError(f"No outbox event {event_id}.")
        bus.replay([event_id])
        return Response(OutboxEventOutput(OutboxEvent.objects.get(pk=event_id)).data)
