"""REST for compression (fit messages into a token budget; expand a replaced stretch) and
episodic session summaries."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.memory.http.records import USER_HELP, RecordOutput
from lumina.memory.services.compression import (
    MAX_BUDGET,
    CompressionDTO,
    ExpandedDTO,
    context_compress,
    segment_expand,
)
from lumina.memory.services.episodes import session_summarize
from lumina.security.api import actor_of


class CompressInput(serializers.Serializer):
    messages = serializers.JSONField(
        help_text="OpenAI Chat Completions messages, oldest first; the last is the question."
    )
    budget = serializers.IntegerField(
        min_value=1, max_value=MAX_BUDGET, help_text="Tokens the returned messages may use."
    )
    keep_recent = serializers.IntegerField(
        min_value=0,
        max_value=1000,
        default=2,
        help_text="Recent messages kept verbatim whenever they fit.",
    )
    pinned = serializers.ListField(
        child=serializers.CharField(max_length=20_000, trim_whitespace=False),
        max_length=50,
        default=list,
        help_text="Blocks always placed in the context (after the system prompt).",
    )
    session = serializers.CharField(
        max_length=200, default="", allow_blank=True, help_text="The conversation's session id."
    )
    memories = serializers.BooleanField(
        default=True, help_text="Add memories relevant to the latest question when room is left."
    )
    summary = serializers.ChoiceField(
        choices=["auto", "llm", "extractive"],
        default="auto",
        help_text="'auto': a chat model when a real one is configured, else extractive.",
    )


class SegmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    first_index = serializers.IntegerField(help_text="Position of its first message.")
    last_index = serializers.IntegerField(help_text="Position of its last message.")
    turns = serializers.IntegerField()
    method = serializers.ChoiceField(choices=["llm", "extractive", "none"])
    summary = serializers.CharField(allow_blank=True)
    tokens_original = serializers.IntegerField()
    tokens_summary = serializers.IntegerField()
    included = serializers.BooleanField(help_text="False: dropped, no room for its summary.")
    children = serializers.ListField(
        child=serializers.UUIDField(), help_text="Earlier segments this one summarises."
    )
    covered = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Positions of messages the summary still quotes from.",
    )


class DroppedOutput(serializers.Serializer):
    index = serializers.IntegerField()
    role = serializers.CharField()
    reason = serializers.CharField()
    segment_id = serializers.UUIDField(allow_null=True)


class CompressOutput(serializers.Serializer):
    messages = serializers.ListField(child=serializers.DictField())
    budget = serializers.IntegerField()
    tokens_before = serializers.IntegerField()
    tokens_after = serializers.IntegerField()
    segments = SegmentOutput(many=True)
    dropped = DroppedOutput(many=True)
    kept = serializers.ListField(
        child=serializers.IntegerField(), help_text="Positions of messages kept verbatim."
    )
    memories = serializers.ListField(child=serializers.CharField())


class ExpandQuery(serializers.Serializer):
    recursive = serializers.BooleanField(
        default=True, help_text="Expand the summaries nested inside the segment too."
    )


class ExpandOutput(serializers.Serializer):
    id = serializers.UUIDField()
    session = serializers.CharField(allow_blank=True)
    first_index = serializers.IntegerField()
    last_index = serializers.IntegerField()
    method = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    turns = serializers.ListField(child=serializers.DictField())
    children = serializers.ListField(child=serializers.UUIDField())


def _compressed(result: CompressionDTO) -> dict:
    return {
        "messages": list(result.messages),
        "budget": result.budget,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "segments": [
            {
                "id": s.id,
                "first_index": s.first_index,
                "last_index": s.last_index,
                "turns": s.turns,
                "method": s.method,
                "summary": s.summary,
                "tokens_original": s.tokens_original,
                "tokens_summary": s.tokens_summary,
                "included": s.included,
                "children": list(s.children),
                "covered": list(s.covered),
            }
            for s in result.segments
        ],
        "dropped": [
            {"index": d.index, "role": d.role, "reason": d.reason, "segment_id": d.segment_id}
            for d in result.dropped
        ],
        "kept": list(result.kept),
        "memories": list(result.memories),
    }


def _expanded(result: ExpandedDTO) -> dict:
    return {
        "id": result.id,
        "session": result.session,
        "first_index": result.first_index,
        "last_index": result.last_index,
        "method": result.method,
        "summary": result.summary,
        "turns": list(result.turns),
        "children": list(result.children),
    }


class CompressApi(APIView):
    """Fit messages into a token budget: system prompt and pinned blocks kept, recent turns
    verbatim, older stretches replaced by summaries (each a segment you can expand),
    relevant memories added when room is left. 400 naming ``budget`` when the system
    prompt alone does not fit."""

    @extend_schema(request=CompressInput, responses={200: CompressOutput})
    def post(self, request):
        data = CompressInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = context_compress(actor=actor_of(request), **data.validated_data)
        return Response(CompressOutput(_compressed(result)).data)


class ExpandApi(APIView):
    """The original messages a segment replaced; with ``recursive`` (default) the
    summaries nested inside it are expanded too. Someone else's segment is a 404."""

    @extend_schema(parameters=[ExpandQuery], responses={200: ExpandOutput})
    def get(self, request, segment_id):
        query = ExpandQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = segment_expand(
            actor=actor_of(request),
            segment_id=segment_id,
            recursive=query.validated_data["recursive"],
        )
        return Response(ExpandOutput(_expanded(result)).data)


class SummarizeInput(serializers.Serializer):
    session_id = serializers.CharField(max_length=200, help_text="The session to summarise.")
    user_id = serializers.UUIDField(required=False, allow_null=True, help_text=USER_HELP)
    summary = serializers.ChoiceField(
        choices=["auto", "llm", "extractive"],
        default="auto",
        help_text="'auto': a chat model when a real one is configured, else extractive.",
    )


class SessionSummarizeApi(APIView):
    """An episodic summary of a session, its turns as provenance; long sessions are
    summarised by stretches, then the stretches' summaries. Summarising again after new
    turns supersedes the previous summary (never deletes it)."""

    @extend_schema(request=SummarizeInput, responses={200: RecordOutput})
    def post(self, request):
        data = SummarizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        record = session_summarize(
            actor=actor_of(request),
            session_id=data.validated_data["session_id"],
            user_id=data.validated_data.get("user_id"),
            method=data.validated_data["summary"],
        )
        return Response(RecordOutput(record).data)


urlpatterns = [
    path("compression/compress", CompressApi.as_view(), name="memory-compression-compress"),
    path(
        "compression/segments/<uuid:segment_id>/expand",
        ExpandApi.as_view(),
        name="memory-compression-expand",
    ),
    path(
        "memory/sessions/summarize",
        SessionSummarizeApi.as_view(),
        name="memory-sessions-summarize",
    ),
]
