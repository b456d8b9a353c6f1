"""Memory records under ``/api/v1/memory``: turns, imports, search, records, pinned blocks,
extraction errors and scope policies.

Reading needs ``memory.read``, writing ``memory.write``; acting on another user's memory
(``user_id``) needs ``memory.manage`` as well (403 before anything is read). A record the
caller may not see is a 404, like one that does not exist.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.memory.errors import InvalidInputError
from lumina.memory.models.records import Layer, ScopeKind
from lumina.memory.selectors.records import (
    extraction_error_list,
    record_get,
    record_history,
    record_list,
)
from lumina.memory.services.imports import JSON, JSONL, records_import
from lumina.memory.services.pinned import (
    pinned_create,
    pinned_get,
    pinned_list,
    pinned_remove,
    pinned_update,
)
from lumina.memory.services.policy import scope_policy_list, scope_policy_set
from lumina.memory.services.records import MAX_TEXT, turn_record
from lumina.memory.services.search import MAX_K, MODES, RETRIEVERS, SearchQuery, memory_search
from lumina.security.api import actor_of

USER_HELP = "Another user's memory (needs memory.manage). Default: your own."


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Output -----------------------------------------------------------------------------


@extend_schema_serializer(component_name="MemoryRecord")
class RecordOutput(serializers.Serializer):
    id = serializers.UUIDField()
    owner_id = serializers.UUIDField()
    scope = serializers.ChoiceField(choices=ScopeKind.values)
    agent_id = serializers.CharField()
    session_id = serializers.CharField()
    layer = serializers.ChoiceField(choices=Layer.values)
    speaker = serializers.CharField()
    label = serializers.CharField(help_text="Pinned: the block's name. Facts: the value.")
    text = serializers.CharField()
    external_id = serializers.CharField(help_text="The id an imported turn had in its file.")
    fact_key = serializers.CharField(help_text="Facts: subject|attribute.")
    metadata = serializers.DictField(help_text="The caller's metadata, as given.")
    occurred_at = serializers.DateTimeField(help_text="When it was said.")
    importance = serializers.FloatField()
    access_count = serializers.IntegerField()
    last_accessed_at = serializers.DateTimeField(allow_null=True)
    valid_from = serializers.DateTimeField(allow_null=True, help_text="When it became true.")
    valid_to = serializers.DateTimeField(allow_null=True, help_text="When it stopped being true.")
    recorded_at = serializers.DateTimeField(help_text="When we learned it.")
    superseded_at = serializers.DateTimeField(
        allow_null=True, help_text="When we stopped believing this version."
    )
    superseded_by = serializers.UUIDField(allow_null=True)
    provenance = serializers.ListField(
        child=serializers.UUIDField(), help_text="The turns it came from."
    )
    extracted_by = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    expired_at = serializers.DateTimeField(allow_null=True)
    embedded = serializers.BooleanField(help_text="False while its embedding is pending.")


@extend_schema_serializer(component_name="MemoryFactDecision")
class FactDecisionOutput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["add", "update", "supersede", "noop"])
    record_id = serializers.UUIDField()
    text = serializers.CharField()
    reason = serializers.CharField()
    replaced_id = serializers.UUIDField(allow_null=True)
    judged_by = serializers.CharField()


@extend_schema_serializer(component_name="MemoryTurnResult")
class TurnOutput(serializers.Serializer):
    record = RecordOutput()
    created = serializers.BooleanField(help_text="False: the same turn was recorded before.")
    facts = FactDecisionOutput(many=True)


@extend_schema_serializer(component_name="MemoryImportResult")
class ImportOutput(serializers.Serializer):
    imported = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Turns already stored.")
    sessions = serializers.IntegerField()
    facts = serializers.IntegerField(help_text="Facts added, updated or superseded.")
    embedding = serializers.ChoiceField(
        choices=["done", "pending"],
        help_text="pending: the embedding model was down; finished through the outbox.",
    )


@extend_schema_serializer(component_name="MemoryTimeWindow")
class TimeWindowOutput(serializers.Serializer):
    phrase = serializers.CharField()
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    kind = serializers.ChoiceField(choices=["period", "before", "after"])
    anchor = serializers.CharField()


@extend_schema_serializer(component_name="MemorySearchHit")
class HitOutput(serializers.Serializer):
    record = RecordOutput()
    layer = serializers.CharField(source="record.layer")
    score = serializers.FloatField()
    scores = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Per retriever (vector, text, time, graph) its score and rank, then "
        "relevance, recency, importance, time and validity.",
    )
    why = serializers.ListField(child=serializers.CharField())


@extend_schema_serializer(component_name="MemorySearchResult")
class SearchOutput(serializers.Serializer):
    hits = HitOutput(many=True)
    mode = serializers.CharField()
    query = serializers.CharField()
    time_windows = TimeWindowOutput(many=True)
    reference_time = serializers.DateTimeField(allow_null=True)


# The answers a page or a search sends, built directly: DRF's serializers above describe
# them (OpenAPI) and a test holds the two to the same output, but walking their fields
# per record cost a search more CPU than its scoring.
_DATETIME = serializers.DateTimeField()
_DATETIMES = (
    "occurred_at",
    "last_accessed_at",
    "valid_from",
    "valid_to",
    "recorded_at",
    "superseded_at",
    "expires_at",
    "expired_at",
)


def _when(value):
    return None if value is None else _DATETIME.to_representation(value)


def record_data(record) -> dict:
    """``RecordOutput(record).data``, built directly."""
    data = {
        "id": str(record.id),
        "owner_id": str(record.owner_id),
        "scope": record.scope,
        "agent_id": record.agent_id,
        "session_id": record.session_id,
        "layer": record.layer,
        "speaker": record.speaker,
        "label": record.label,
        "text": record.text,
        "external_id": record.external_id,
        "fact_key": record.fact_key,
        "metadata": {str(key): value for key, value in record.metadata.items()},
        "occurred_at": None,
        "importance": float(record.importance),
        "access_count": int(record.access_count),
        "last_accessed_at": None,
        "valid_from": None,
        "valid_to": None,
        "recorded_at": None,
        "superseded_at": None,
        "superseded_by": None if record.superseded_by is None else str(record.superseded_by),
        "provenance": [str(turn) for turn in record.provenance],
        "extracted_by": record.extracted_by,
        "expires_at": None,
        "expired_at": None,
        "embedded": bool(record.embedded),
    }
    for name in _DATETIMES:
        data[name] = _when(getattr(record, name))
    return data


def search_data(result) -> dict:
    """``SearchOutput(result).data``, built directly."""
    return {
        "hits": [
            {
                "record": record_data(hit.record),
                "layer": hit.record.layer,
                "score": float(hit.score),
                "scores": {str(name): float(value) for name, value in hit.scores.items()},
                "why": [str(reason) for reason in hit.why],
            }
            for hit in result.hits
        ],
        "mode": result.mode,
        "query": result.query,
        "time_windows": [
            {
                "phrase": window.phrase,
                "start": _when(window.start),
                "end": _when(window.end),
                "kind": window.kind,
                "anchor": window.anchor,
            }
            for window in result.time_windows
        ],
        "reference_time": _when(result.reference_time),
    }


@extend_schema_serializer(component_name="MemoryExtractionError")
class ExtractionErrorOutput(serializers.Serializer):
    id = serializers.UUIDField()
    extractor = serializers.CharField()
    turn_ids = serializers.ListField(child=serializers.UUIDField())
    error = serializers.CharField()
    raw_output = serializers.CharField()
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(component_name="MemoryScopePolicy")
class PolicyOutput(serializers.Serializer):
    scope = serializers.ChoiceField(choices=ScopeKind.values)
    ttl_days = serializers.FloatField(allow_null=True, help_text="null: never expires.")
    half_life_days = serializers.FloatField()
    default = serializers.BooleanField(help_text="True: the built-in defaults, nothing stored.")


# --- Input ------------------------------------------------------------------------------


class MemoryOwnerInput(serializers.Serializer):
    user_id = serializers.UUIDField(required=False, help_text=USER_HELP)


class MemoryTurnInput(MemoryOwnerInput):
    text = serializers.CharField(max_length=MAX_TEXT, trim_whitespace=False)
    speaker = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    session_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    agent_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    occurred_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="When it was said (default now)."
    )
    metadata = serializers.DictField(required=False, default=dict)
    importance = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=1
    )


class MemorySearchInput(MemoryOwnerInput):
    query = serializers.CharField(max_length=4000)
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    layers = serializers.ListField(
        child=serializers.ChoiceField(choices=Layer.values),
        required=False,
        min_length=1,
        help_text="Default: working, episodic and semantic.",
    )
    session_id = serializers.CharField(max_length=200, required=False)
    agent_id = serializers.CharField(max_length=200, required=False)
    filter = serializers.DictField(
        required=False,
        help_text="Metadata filter: the filter language of vector collections "
        "(eq, $in, $gt/$gte/$lt/$lte, $contains, $exists, $and/$or/$not).",
    )
    occurred_after = serializers.DateTimeField(required=False)
    occurred_before = serializers.DateTimeField(required=False)
    as_of = serializers.DateTimeField(
        required=False, help_text="Answer with what was believed at this time."
    )
    valid_at = serializers.DateTimeField(
        required=False, help_text="Only facts that held at this time."
    )
    now = serializers.DateTimeField(
        required=False,
        help_text="The time relative phrases ('last spring') are read against; "
        "default as_of, else the current time.",
    )
    weights = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=100),
        required=False,
        help_text=f"Per retriever ({', '.join(RETRIEVERS)}), default 1 each.",
    )
    time_aware = serializers.BooleanField(default=True)
    ef_search = serializers.IntegerField(min_value=10, max_value=1000, default=100)


class MemoryPinnedCreateInput(MemoryOwnerInput):
    label = serializers.CharField(max_length=100)
    text = serializers.CharField(max_length=MAX_TEXT, trim_whitespace=False)
    agent_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class MemoryPinnedUpdateInput(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False)
    text = serializers.CharField(max_length=MAX_TEXT, required=False, trim_whitespace=False)


class MemoryPolicyInput(MemoryOwnerInput):
    ttl_days = serializers.FloatField(
        allow_null=True, min_value=0.001, max_value=36500, help_text="null: never expires."
    )
    half_life_days = serializers.FloatField(min_value=0.001, max_value=36500, default=180.0)


class MemoryRecordFilter(MemoryOwnerInput):
    layer = serializers.ChoiceField(choices=Layer.values, required=False)
    session_id = serializers.CharField(max_length=200, required=False)
    agent_id = serializers.CharField(max_length=200, required=False)
    as_of = serializers.DateTimeField(required=False)
    occurred_after = serializers.DateTimeField(required=False)
    occurred_before = serializers.DateTimeField(required=False)
    include_expired = serializers.BooleanField(required=False, default=False)
    include_superseded = serializers.BooleanField(required=False, default=False)


# --- Parsers ----------------------------------------------------------------------------


class _TextParser(BaseParser):
    """The body as text: the import service reads it itself, to name a bad line."""

    format_name = ""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return {"format": self.format_name, "text": raw.decode("utf-8")}
        except UnicodeDecodeError:
            raise InvalidInputError("body", "The file must be UTF-8 text.") from None


class ImportJSONParser(_TextParser):
    media_type = "application/json"
    format_name = JSON


class ImportJSONLParser(_TextParser):
    media_type = "application/x-ndjson"
    format_name = JSONL


class ImportJSONLinesParser(_TextParser):
    media_type = "application/jsonl"
    format_name = JSONL


# --- Views ------------------------------------------------------------------------------


class TurnRecordApi(APIView):
    """Record one turn: embedded now (503 if the embedding model is down), facts extracted
    and consolidated. The same turn again (same text, speaker, scope and time) is a no-op."""

    error_statuses = (503,)  # the embedding model is down: nothing was written

    @extend_schema(request=MemoryTurnInput, responses={201: TurnOutput, 200: TurnOutput})
    def post(self, request):
        data = _valid(MemoryTurnInput, request.data)
        result = turn_record(actor=actor_of(request), **data)
        return Response(TurnOutput(result).data, status=201 if result.created else 200)


IMPORT_EXAMPLE = (
    '{"sessions": [{"session_id": "s1", "occurred_at": "2023-05-08T13:56:00Z", '
    '"turns": [{"speaker": "Anna", "text": "I moved to Berlin."}]}]}'
)


class MemoryImportQuery(MemoryOwnerInput):
    agent_id = serializers.CharField(max_length=200, required=False, default="")
    session_id = serializers.CharField(max_length=200, required=False, default="")


class ImportApi(APIView):
    """Import a history, JSON (``application/json``) or JSONL (``application/x-ndjson``, one
    session or turn per line). All or nothing: a bad line is a 400 naming it. 201 when
    done; 202 when the embedding model was down: the turns are stored (text search finds
    them) and their embeddings and facts are finished through the outbox."""

    parser_classes = [ImportJSONParser, ImportJSONLParser, ImportJSONLinesParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", OpenApiTypes.UUID, description=USER_HELP),
            OpenApiParameter("agent_id", OpenApiTypes.STR, description="Default agent id."),
            OpenApiParameter("session_id", OpenApiTypes.STR, description="Default session id."),
        ],
        request={
            "application/json": {"type": "object", "description": IMPORT_EXAMPLE},
            "application/x-ndjson": {"type": "string", "format": "binary"},
        },
        responses={201: ImportOutput, 202: ImportOutput},
    )
    def post(self, request):
        query = _valid(MemoryImportQuery, request.query_params)
        body = request.data
        if not isinstance(body, dict) or "text" not in body:
            raise InvalidInputError(
                "body", "Send the history as application/json or application/x-ndjson."
            )
        result = records_import(
            actor=actor_of(request), text=body["text"], fmt=body["format"], **query
        )
        status = 202 if result.embedding == "pending" else 201
        return Response(ImportOutput(result).data, status=status)


class SearchApi(APIView):
    """Search memories: hybrid (default), vector, text or graph; time-aware ("last spring",
    "in 2023", "before the move"); each hit says why it is there."""

    error_statuses = (503,)  # the embedding model is down

    @extend_schema(request=MemorySearchInput, responses=SearchOutput)
    def post(self, request):
        data = _valid(MemorySearchInput, request.data)
        user_id = data.pop("user_id", None)
        metadata = data.pop("filter", None)
        layers = data.pop("layers", None)
        search = SearchQuery(
            **data, metadata=metadata, **({"layers": tuple(layers)} if layers else {})
        )
        result = memory_search(actor=actor_of(request), search=search, user_id=user_id)
        return Response(search_data(result))


class RecordListApi(GenericAPIView):
    """The caller's memory records, newest said first; ``as_of`` shows what was believed."""

    serializer_class = RecordOutput

    @extend_schema(parameters=[MemoryRecordFilter], responses=RecordOutput(many=True))
    def get(self, request):
        filters = _valid(MemoryRecordFilter, request.query_params)
        rows = record_list(actor=actor_of(request), **filters)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([record_data(record) for record in page])


class RecordDetailApi(APIView):
    @extend_schema(responses=RecordOutput)
    def get(self, request, memory_id):
        return Response(RecordOutput(record_get(actor=actor_of(request), record_id=memory_id)).data)


class RecordHistoryApi(APIView):
    """Every version of a fact or pinned block, oldest belief first, with validity."""

    @extend_schema(responses=RecordOutput(many=True))
    def get(self, request, memory_id):
        rows = record_history(actor=actor_of(request), record_id=memory_id)
        return Response(RecordOutput(rows, many=True).data)


class ExtractionErrorListApi(GenericAPIView):
    """Fact extractors' answers that could not be used, with the turns they were about."""

    serializer_class = ExtractionErrorOutput

    class FilterSerializer(MemoryOwnerInput):
        unresolved = serializers.BooleanField(required=False, default=False)

    @extend_schema(parameters=[FilterSerializer], responses=ExtractionErrorOutput(many=True))
    def get(self, request):
        filters = _valid(self.FilterSerializer, request.query_params)
        rows = extraction_error_list(
            actor=actor_of(request),
            user_id=filters.get("user_id"),
            unresolved_only=filters["unresolved"],
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ExtractionErrorOutput(page, many=True).data)


class PinnedListCreateApi(APIView):
    """Pinned blocks, always placed in context; create one."""

    error_statuses = (409, 503)  # the label is taken; the embedding model is down

    @extend_schema(parameters=[MemoryOwnerInput], responses=RecordOutput(many=True))
    def get(self, request):
        query = _valid(MemoryOwnerInput, request.query_params)
        rows = pinned_list(actor=actor_of(request), user_id=query.get("user_id"))
        return Response(RecordOutput(rows, many=True).data)

    @extend_schema(request=MemoryPinnedCreateInput, responses={201: RecordOutput})
    def post(self, request):
        data = _valid(MemoryPinnedCreateInput, request.data)
        row = pinned_create(actor=actor_of(request), **data)
        return Response(RecordOutput(row).data, status=201)


class PinnedDetailApi(APIView):
    """One block; PATCH stores a new version (the old one stays, closed); DELETE expires it."""

    error_statuses = (409, 503)

    @extend_schema(responses=RecordOutput)
    def get(self, request, block_id):
        return Response(RecordOutput(pinned_get(actor=actor_of(request), block_id=block_id)).data)

    @extend_schema(request=MemoryPinnedUpdateInput, responses=RecordOutput)
    def patch(self, request, block_id):
        data = _valid(MemoryPinnedUpdateInput, request.data)
        row = pinned_update(actor=actor_of(request), block_id=block_id, **data)
        return Response(RecordOutput(row).data)

    @extend_schema(responses={204: None})
    def delete(self, request, block_id):
        pinned_remove(actor=actor_of(request), block_id=block_id)
        return Response(status=204)


class PolicyListApi(APIView):
    """Time to live and decay half-life per scope (user, agent, session)."""

    @extend_schema(parameters=[MemoryOwnerInput], responses=PolicyOutput(many=True))
    def get(self, request):
        query = _valid(MemoryOwnerInput, request.query_params)
        rows = scope_policy_list(actor=actor_of(request), user_id=query.get("user_id"))
        return Response(PolicyOutput(rows, many=True).data)


class PolicyDetailApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "scope", OpenApiTypes.STR, OpenApiParameter.PATH, enum=ScopeKind.values
            )
        ],
        request=MemoryPolicyInput,
        responses=PolicyOutput,
    )
    def put(self, request, scope):
        data = _valid(MemoryPolicyInput, request.data)
        if scope not in ScopeKind.values:
            raise InvalidInputError("scope", f"One of {', '.join(ScopeKind.values)}.")
        row = scope_policy_set(actor=actor_of(request), scope=scope, **data)
        return Response(PolicyOutput(row).data)


urlpatterns = [
    path("memory/turns", TurnRecordApi.as_view(), name="memory-turns"),
    path("memory/import", ImportApi.as_view(), name="memory-import"),
    path("memory/search", SearchApi.as_view(), name="memory-search"),
    path("memory/records", RecordListApi.as_view(), name="memory-records"),
    path("memory/records/<uuid:memory_id>", RecordDetailApi.as_view(), name="memory-record"),
    path(
        "memory/records/<uuid:memory_id>/history",
        RecordHistoryApi.as_view(),
        name="memory-record-history",
    ),
    path(
        "memory/extraction-errors",
        ExtractionErrorListApi.as_view(),
        name="memory-extraction-errors",
    ),
    path("memory/pinned", PinnedListCreateApi.as_view(), name="memory-pinned"),
    path("memory/pinned/<uuid:block_id>", PinnedDetailApi.as_view(), name="memory-pinned-block"),
    path("memory/policies", PolicyListApi.as_view(), name="memory-policies"),
    path("memory/policies/<str:scope>", PolicyDetailApi.as_view(), name="memory-policy"),
]
