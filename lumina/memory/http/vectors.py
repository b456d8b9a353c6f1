"""REST for vector collections under /api/v1/vectors: collections, records, search.

``{collection}`` in a path is the caller's own collection by name, or any visible one by
id. Another user's collection is 404 to a caller without ``memory.manage``. Vectors,
metadata and filters are validated by the services, which name the offending field
(``records[3].vector``, ``filter.$or[1].year.$gt``).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.memory.models.vectors import MAX_DIMENSION, Distance, IndexType
from lumina.memory.selectors import vectors as reads
from lumina.memory.selectors.vectors import MAX_K, MODES
from lumina.memory.services import vectors as writes
from lumina.memory.services.vectors import MAX_BATCH
from lumina.providers.api import DEFAULT_EMBEDDING_MODEL
from lumina.security.api import actor_of

# --- Fields -----------------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "number"}, "maxItems": MAX_DIMENSION})
class VectorField(serializers.JSONField):
    """A list of numbers; its length, finiteness and type are checked by the service."""


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "Metadata filter: {field: value} for equality, or {field: {$eq|$ne|$in|$nin|"
            "$gt|$gte|$lt|$lte|$contains|$exists: operand}}, combined with $and/$or (lists) "
            "and $not. 'a.b' reaches into nested objects. A field no record has is a 400."
        ),
    }
)
class FilterField(serializers.JSONField):
    pass


class RecordInput(serializers.Serializer):
    id = serializers.CharField(required=False, help_text="Yours; a random one if left out.")
    vector = VectorField(required=False, help_text="Exactly the collection's dimension.")
    text = serializers.CharField(
        required=False, allow_blank=True, help_text="Embedded when no vector is given."
    )
    metadata = ObjectField(required=False)


@extend_schema_field(RecordInput(many=True))
class RecordsField(serializers.JSONField):
    """Validated record by record by the service, which names ``records[i].field``."""


# --- Output -----------------------------------------------------------------------------


class CollectionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    owner_id = serializers.UUIDField()
    description = serializers.CharField()
    embedding_model = serializers.CharField(help_text="Empty: the caller brings vectors.")
    dimension = serializers.IntegerField()
    distance = serializers.ChoiceField(choices=Distance.values)
    hnsw_m = serializers.IntegerField()
    hnsw_ef_construction = serializers.IntegerField()
    default_ef_search = serializers.IntegerField()
    record_count = serializers.IntegerField()
    metadata_fields = serializers.ListField(child=serializers.CharField())
    reembedding_to = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    index_type = serializers.ChoiceField(
        choices=IndexType.values,
        help_text="What the HNSW index stores: halfvec (half precision, hits re-scored on "
        "the stored single-precision vectors) or vector (collections created before).",
    )


class RecordOutput(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    metadata = ObjectField()
    vector = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class UpsertOutput(serializers.Serializer):
    collection = serializers.CharField()
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.CharField())


class RetrieverOutput(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1-based rank in this retriever's list.")
    score = serializers.FloatField(
        help_text="vector: similarity (cosine 1-d, ip the product, l2 minus the distance); "
        "text: ts_rank_cd."
    )
    distance = serializers.FloatField(allow_null=True)


class HitOutput(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    metadata = ObjectField()
    score = serializers.FloatField(help_text="The final score the hits are ordered by.")
    retrievers = serializers.DictField(child=RetrieverOutput())
    rrf = serializers.FloatField(allow_null=True)
    mmr = serializers.FloatField(allow_null=True)


class SearchOutput(serializers.Serializer):
    collection = serializers.CharField()
    mode = serializers.ChoiceField(choices=MODES)
    hits = HitOutput(many=True)
    vector_plan = serializers.ChoiceField(choices=["hnsw", "exact", "none"])
    ef_search = serializers.IntegerField(allow_null=True)


class DeletedOutput(serializers.Serializer):
    deleted = serializers.IntegerField()


# --- Input ------------------------------------------------------------------------------


class CollectionCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    embedding_model = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=DEFAULT_EMBEDDING_MODEL
    )
    dimension = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=MAX_DIMENSION
    )
    distance = serializers.ChoiceField(choices=Distance.values, default=Distance.COSINE)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    hnsw_m = serializers.IntegerField(required=False, min_value=2, max_value=100)
    hnsw_ef_construction = serializers.IntegerField(required=False, min_value=4, max_value=1000)
    default_ef_search = serializers.IntegerField(required=False, min_value=1, max_value=1000)


class CollectionUpdateInput(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    default_ef_search = serializers.IntegerField(required=False, min_value=1, max_value=1000)


class CollectionListFilter(serializers.Serializer):
    everyone = serializers.BooleanField(
        required=False, default=False, help_text="Everyone's collections (memory.manage)."
    )


class UpsertInput(serializers.Serializer):
    records = RecordsField(help_text=f"1 to {MAX_BATCH} records; all written or none.")


class FetchInput(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=MAX_K
    )
    include_vectors = serializers.BooleanField(required=False, default=False)


class DeleteInput(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=200),
        min_length=1,
        max_length=MAX_BATCH,
        required=False,
        allow_null=True,
        default=None,
    )
    filter = FilterField(required=False, allow_null=True, default=None)


class SearchInput(serializers.Serializer):
    query = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, default=None, trim_whitespace=False
    )
    vector = VectorField(required=False, allow_null=True, default=None)
    k = serializers.IntegerField(required=False, default=10)
    mode = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="vector, text or hybrid (default: hybrid with a query, else vector).",
    )
    filter = FilterField(required=False, allow_null=True, default=None)
    ef_search = serializers.IntegerField(required=False, allow_null=True, default=None)
    weights = ObjectField(
        required=False, allow_null=True, default=None, help_text='{"vector": 1, "text": 1}'
    )
    mmr = serializers.BooleanField(required=False, default=False)
    mmr_lambda = serializers.FloatField(required=False, default=0.5)
    candidates = serializers.IntegerField(required=False, allow_null=True, default=None)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Views ------------------------------------------------------------------------------


class CollectionListCreateApi(GenericAPIView):
    """Your collections (everyone's with ``everyone=true`` and memory.manage); create one."""

    serializer_class = CollectionOutput
    # 409: the name is yours already; 503: the model was asked for its dimension and is down.
    error_statuses = (409, 503)

    @extend_schema(parameters=[CollectionListFilter], responses=CollectionOutput(many=True))
    def get(self, request):
        options = _valid(CollectionListFilter, request.query_params)
        rows = reads.collection_list(actor=actor_of(request), everyone=options["everyone"])
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CollectionOutput(page, many=True).data)

    @extend_schema(request=CollectionCreateInput, responses={201: CollectionOutput})
    def post(self, request):
        data = _valid(CollectionCreateInput, request.data)
        info = writes.collection_create(actor=actor_of(request), **data)
        return Response(CollectionOutput(info).data, status=201)


class CollectionDetailApi(APIView):
    """One collection; PATCH changes its description or default ef_search; DELETE removes it
    with its records."""

    @extend_schema(responses=CollectionOutput)
    def get(self, request, collection):
        return Response(
            CollectionOutput(reads.collection_get(actor=actor_of(request), ref=collection)).data
        )

    @extend_schema(request=CollectionUpdateInput, responses=CollectionOutput)
    def patch(self, request, collection):
        data = _valid(CollectionUpdateInput, request.data)
        info = writes.collection_update(actor=actor_of(request), ref=collection, **data)
        return Response(CollectionOutput(info).data)

    @extend_schema(responses={204: None})
    def delete(self, request, collection):
        writes.collection_delete(actor=actor_of(request), ref=collection)
        return Response(status=204)


class CollectionReindexApi(APIView):
    """Rebuild the collection's HNSW index (after a bulk load, or to apply new parameters)."""

    @extend_schema(request=None, responses=CollectionOutput)
    def post(self, request, collection):
        info = writes.collection_reindex(actor=actor_of(request), ref=collection)
        return Response(CollectionOutput(info).data)


class RecordUpsertApi(APIView):
    """Insert or replace records by id. Texts without a vector are embedded with the
    collection's model (503 if it is down; nothing is written)."""

    # 409: the collection switched model while the texts were being embedded.
    error_statuses = (409, 503)

    @extend_schema(request=UpsertInput, responses=UpsertOutput)
    def post(self, request, collection):
        data = _valid(UpsertInput, request.data)
        result = writes.vectors_upsert(
            actor=actor_of(request), ref=collection, records=data["records"]
        )
        return Response(UpsertOutput(result).data)


class RecordDetailApi(APIView):
    """One record (with its vector); DELETE removes it."""

    @extend_schema(responses=RecordOutput)
    def get(self, request, collection, record_id):
        (item,) = reads.vectors_get(
            actor=actor_of(request), ref=collection, ids=[record_id], include_vectors=True
        )
        return Response(RecordOutput(item).data)

    @extend_schema(responses={204: None})
    def delete(self, request, collection, record_id):
        writes.vectors_delete(actor=actor_of(request), ref=collection, ids=[record_id])
        return Response(status=204)


class RecordFetchApi(APIView):
    """Records by id, in the order asked; an unknown id is a 404 naming it."""

    @extend_schema(request=FetchInput, responses=RecordOutput(many=True))
    def post(self, request, collection):
        data = _valid(FetchInput, request.data)
        items = reads.vectors_get(actor=actor_of(request), ref=collection, **data)
        return Response(RecordOutput(items, many=True).data)


class RecordDeleteApi(APIView):
    """Delete records by ``ids``, or every record a ``filter`` matches (not both)."""

    @extend_schema(request=DeleteInput, responses=DeletedOutput)
    def post(self, request, collection):
        data = _valid(DeleteInput, request.data)
        deleted = writes.vectors_delete(actor=actor_of(request), ref=collection, **data)
        return Response({"deleted": deleted})


class SearchApi(APIView):
    """The k best records for a query text and/or a vector: ``vector``, ``text`` or
    ``hybrid`` (RRF of both, per-query weights, optional MMR); each hit reports every
    retriever's rank and score."""

    error_statuses = (503,)  # the query text could not be embedded

    @extend_schema(request=SearchInput, responses=SearchOutput)
    def post(self, request, collection):
        data = _valid(SearchInput, request.data)
        result = reads.vectors_search(actor=actor_of(request), ref=collection, **data)
        return Response(SearchOutput(result).data)


PREFIX = "vectors/collections"
urlpatterns = [
    path(PREFIX, CollectionListCreateApi.as_view(), name="vector-collections"),
    path(f"{PREFIX}/<str:collection>", CollectionDetailApi.as_view(), name="vector-collection"),
    path(
        f"{PREFIX}/<str:collection>/reindex",
        CollectionReindexApi.as_view(),
        name="vector-collection-reindex",
    ),
    path(f"{PREFIX}/<str:collection>/records", RecordUpsertApi.as_view(), name="vector-records"),
    path(
        f"{PREFIX}/<str:collection>/records/<str:record_id>",
        RecordDetailApi.as_view(),
        name="vector-record",
    ),
    path(f"{PREFIX}/<str:collection>/fetch", RecordFetchApi.as_view(), name="vector-fetch"),
    path(f"{PREFIX}/<str:collection>/delete", RecordDeleteApi.as_view(), name="vector-delete"),
    path(f"{PREFIX}/<str:collection>/search", SearchApi.as_view(), name="vector-search"),
]
