"""Topics and the entity graph under ``/api/v1/topics``.

Reading needs ``memory.read``, extracting ``memory.write``; another user's (``user_id``)
needs ``memory.manage`` as well. A topic the caller may not see is a 404.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.memory.models.topics import TopicScope
from lumina.memory.services.entity_extraction import RELATION_KINDS
from lumina.memory.services.topics import (
    graph_get,
    topic_get,
    topic_members_get,
    topics_extract,
    topics_get,
)
from lumina.security.api import actor_of

SCOPE_HELP = (
    "user (all of a user's memories), agent, session or collection; "
    "key names the agent, the session or the collection."
)


@extend_schema_serializer(component_name="Topic")
class TopicOutput(serializers.Serializer):
    id = serializers.UUIDField()
    scope = serializers.CharField()
    scope_key = serializers.CharField(help_text="Agent id, session id or collection id.")
    parent_id = serializers.UUIDField(allow_null=True)
    level = serializers.IntegerField(help_text="0 for a leaf topic, 1 for a parent.")
    label = serializers.CharField()
    keywords = serializers.ListField(child=serializers.CharField())
    keyword_weights = serializers.ListField(child=serializers.FloatField())
    size = serializers.IntegerField(help_text="Records in the topic (in its leaves, for a parent).")
    children = serializers.ListField(child=serializers.UUIDField())
    updated_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="TopicMember")
class TopicMemberOutput(serializers.Serializer):
    record_id = serializers.CharField()
    text = serializers.CharField()
    similarity = serializers.FloatField(help_text="Cosine similarity to the topic's centre.")
    occurred_at = serializers.DateTimeField(allow_null=True)


class ScopeInput(serializers.Serializer):
    scope = serializers.ChoiceField(
        choices=TopicScope.values, default=TopicScope.USER, help_text=SCOPE_HELP
    )
    key = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    user_id = serializers.UUIDField(
        required=False, help_text="Another user's topics (needs memory.manage)."
    )


class TopicListApi(APIView):
    """The topics of a scope: parents first, each with its children's ids."""

    error_statuses = (404,)  # a collection named in ``key`` that does not exist

    @extend_schema_serializer(component_name="TopicList")
    class OutputSerializer(serializers.Serializer):
        scope = serializers.CharField()
        key = serializers.CharField()
        topics = TopicOutput(many=True)

    @extend_schema(
        operation_id="memory_topics_list", parameters=[ScopeInput], responses=OutputSerializer
    )
    def get(self, request):
        query = ScopeInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        topics = topics_get(
            actor=actor_of(request),
            scope=data["scope"],
            key=data["key"],
            user_id=data.get("user_id"),
        )
        body = {"scope": data["scope"], "key": data["key"], "topics": topics}
        return Response(self.OutputSerializer(body).data)


class TopicExtractApi(APIView):
    """Cluster a scope's records into topics now, replacing its previous topics."""

    @extend_schema_serializer(component_name="TopicExtraction")
    class OutputSerializer(serializers.Serializer):
        scope = serializers.CharField()
        scope_key = serializers.CharField()
        record_count = serializers.IntegerField()
        silhouette = serializers.FloatField(
            allow_null=True, help_text="Cluster quality, -1 to 1 (null with too few records)."
        )
        topics = TopicOutput(many=True)

    @extend_schema(request=ScopeInput, responses={201: OutputSerializer})
    def post(self, request):
        body = ScopeInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = topics_extract(
            actor=actor_of(request),
            scope=data["scope"],
            key=data["key"],
            user_id=data.get("user_id"),
        )
        return Response(self.OutputSerializer(result).data, status=201)


class TopicDetailApi(APIView):
    """One topic and its records, closest to the topic's centre first."""

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)

    @extend_schema_serializer(component_name="TopicDetail")
    class OutputSerializer(TopicOutput):
        members = TopicMemberOutput(many=True)

    @extend_schema(
        operation_id="memory_topic_retrieve",
        parameters=[FilterSerializer],
        responses=OutputSerializer,
    )
    def get(self, request, topic_id):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        actor = actor_of(request)
        topic = topic_get(actor=actor, topic_id=topic_id)
        members = topic_members_get(
            actor=actor, topic_id=topic_id, limit=query.validated_data["limit"]
        )
        body = {**TopicOutput(topic).data, "members": TopicMemberOutput(members, many=True).data}
        return Response(body)


@extend_schema_serializer(component_name="GraphNode")
class GraphNodeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()
    mentions = serializers.IntegerField()
    first_seen_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(component_name="GraphEdge")
class GraphEdgeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    source = serializers.UUIDField()
    target = serializers.UUIDField()
    kind = serializers.CharField()
    weight = serializers.FloatField(help_text="Records that support the relation.")
    extracted_by = serializers.CharField()
    provenance = serializers.ListField(
        child=serializers.UUIDField(), help_text="Records it was read from, newest first."
    )


class TopicGraphApi(APIView):
    """The entity graph for visualization: entities as nodes, typed weighted relations as
    edges, each edge with the records it was read from."""

    class FilterSerializer(serializers.Serializer):
        user_id = serializers.UUIDField(required=False)
        session_id = serializers.CharField(required=False, default="", max_length=200)
        entity = serializers.CharField(
            required=False,
            default="",
            max_length=100,
            help_text="Only this entity and its neighbours.",
        )
        relation = serializers.MultipleChoiceField(
            choices=RELATION_KINDS,
            required=False,
            allow_blank=True,  # ``relation=`` is an empty list in a query string
            help_text="Relation kinds to keep (repeat).",
        )
        min_weight = serializers.FloatField(required=False, default=1.0, min_value=0)
        limit = serializers.IntegerField(required=False, default=200, min_value=1, max_value=500)

    @extend_schema_serializer(component_name="Graph")
    class OutputSerializer(serializers.Serializer):
        nodes = GraphNodeOutput(many=True)
        edges = GraphEdgeOutput(many=True)
        truncated = serializers.BooleanField(help_text="More entities than the limit.")

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        graph = graph_get(
            actor=actor_of(request),
            user_id=data.get("user_id"),
            session_id=data["session_id"],
            entity=data["entity"],
            min_weight=data["min_weight"],
            kinds=tuple(sorted(kind for kind in data.get("relation") or () if kind)),
            limit=data["limit"],
        )
        return Response(self.OutputSerializer(graph).data)


urlpatterns = [
    path("topics", TopicListApi.as_view(), name="memory-topics"),
    path("topics/extract", TopicExtractApi.as_view(), name="memory-topics-extract"),
    path("topics/graph", TopicGraphApi.as_view(), name="memory-topics-graph"),
    path("topics/<uuid:topic_id>", TopicDetailApi.as_view(), name="memory-topic"),
]
