"""REST for documents: CRUD, sharing, exports and versions.

A document the caller may not read is a 404, as if it did not exist; one they may read
but not change (or share, or restore) a 403. Who may do what is security's object rules
(``lumina.ui.selectors.document_access``); docs/documents.md says it in prose.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import PermissionDeniedError
from lumina.security.api import actor_of
from lumina.ui.selectors.document_access import (
    ACTIONS,
    LEVELS,
    SHARE,
    document_for,
    document_visible,
    permissions_of,
    reach_of,
)
from lumina.ui.selectors.documents import document_list, document_shares, version_list
from lumina.ui.services.documents import (
    document_create,
    document_delete,
    document_rename,
    document_share,
    document_unshare,
    level_of,
)
from lumina.ui.services.exports import FORMATS, document_export
from lumina.ui.services.versions import version_create, version_restore

PERMISSIONS = list(ACTIONS)
SHARE_LEVELS = list(LEVELS)
PRINCIPAL_TYPES = ["user", "group"]


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


# --- Output -----------------------------------------------------------------------------


class DocumentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    owner_id = serializers.UUIDField()
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSIONS),
        help_text="What the caller may do on it.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _document(document, permissions) -> dict:
    return DocumentOutput(
        {
            "id": document.id,
            "title": document.title,
            "owner_id": document.owner_id,
            "permissions": list(permissions),
            "created_at": document.created_at,
            "updated_at": document.updated_at,
        }
    ).data


class DocumentShareOutput(serializers.Serializer):
    principal_type = serializers.ChoiceField(choices=PRINCIPAL_TYPES)
    principal_id = serializers.CharField(help_text="The user's id, or the group's name.")
    principal_label = serializers.CharField(help_text="The user's email, or the group's name.")
    permission = serializers.ChoiceField(choices=SHARE_LEVELS)
    can_share = serializers.BooleanField()


def _share(entry: dict) -> dict:
    actions = set(entry["actions"])
    return DocumentShareOutput(
        {
            "principal_type": entry["principal_type"],
            "principal_id": entry["principal_id"],
            "principal_label": entry["principal_label"],
            "permission": level_of(actions) or "view",
            "can_share": SHARE in actions,
        }
    ).data


class DocumentVersionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    upto_seq = serializers.IntegerField(help_text="The last update of the history it includes.")
    created_by_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class DocumentRestoreOutput(serializers.Serializer):
    version = DocumentVersionOutput()
    seq = serializers.IntegerField(help_text="The new update that restored it.")


class DocumentExportJson(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    owner_id = serializers.UUIDField()
    seq = serializers.IntegerField(help_text="The last update included.")
    content = serializers.DictField(
        help_text='Each non-empty root by name: {"kind": "text"|"xml"|"map"|"array", …}.'
    )
    yjs_state = serializers.CharField(help_text="The whole Yjs (v1) state, base64.")


# --- Input ------------------------------------------------------------------------------


class DocumentCreateInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    owner_id = serializers.UUIDField(
        required=False, help_text="Someone else's (documents.manage). Default: the caller."
    )


class DocumentUpdateInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)


class DocumentShareInput(serializers.Serializer):
    principal = serializers.CharField(
        max_length=300, help_text="A user's id or email, or group:<name>."
    )
    permission = serializers.ChoiceField(choices=SHARE_LEVELS)
    can_share = serializers.BooleanField(default=False, help_text="May share it on.")


class YjsStateField(serializers.CharField):
    """A Yjs (v1) state, base64; bytes once valid."""

    def to_internal_value(self, data) -> bytes:
        try:
            return base64.b64decode(super().to_internal_value(data), validate=True)
        except ValueError:
            raise serializers.ValidationError("Not base64.") from None


_CALLER_STATE = (
    "The caller's own copy of the document (Y.encodeStateAsUpdate, base64): what it holds "
    "that the server does not yet (edits still on their way over its websocket) is stored "
    "first."
)


class DocumentVersionInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    state = YjsStateField(required=False, help_text=_CALLER_STATE)


class DocumentRestoreInput(serializers.Serializer):
    state = YjsStateField(required=False, help_text=_CALLER_STATE)


# --- Views ------------------------------------------------------------------------------


class DocumentListApi(GenericAPIView):
    """Your documents and those shared with you, last changed first; create one."""

    serializer_class = DocumentOutput

    class FilterSerializer(serializers.Serializer):
        owner_id = serializers.UUIDField(required=False)
        search = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "owner_id", OpenApiTypes.UUID, description="Someone else's: documents.manage."
            ),
            OpenApiParameter("search", OpenApiTypes.STR, description="Part of the title."),
        ],
        responses=DocumentOutput(many=True),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        actor = actor_of(request)
        reach = reach_of(actor)
        owner_id = values.get("owner_id")
        if owner_id is not None and owner_id != actor.user_id and not reach.manages:
            raise PermissionDeniedError(
                "Listing someone else's documents needs documents.manage.",
                fields={"owner_id": ["Not yours."]},
            )
        rows = document_list(reach=reach, owner_id=owner_id, search=values.get("search"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([_document(row, reach.permissions(row)) for row in page])

    @extend_schema(request=DocumentCreateInput, responses={201: DocumentOutput})
    def post(self, request):
        actor = actor_of(request)
        document = document_create(actor=actor, **_valid(DocumentCreateInput, request))
        return Response(_document(document, permissions_of(actor, document)), status=201)


class DocumentDetailApi(APIView):
    """One document; PATCH renames it (documents.edit), DELETE deletes it (its owner)."""

    @extend_schema(responses=DocumentOutput)
    def get(self, request, document_id):
        actor = actor_of(request)
        document = document_visible(actor=actor, document_id=document_id)
        return Response(_document(document, permissions_of(actor, document)))

    @extend_schema(request=DocumentUpdateInput, responses=DocumentOutput)
    def patch(self, request, document_id):
        actor = actor_of(request)
        document = document_rename(
            actor=actor, document_id=document_id, **_valid(DocumentUpdateInput, request)
        )
        return Response(_document(document, permissions_of(actor, document)))

    @extend_schema(responses={204: None})
    def delete(self, request, document_id):
        document_delete(actor=actor_of(request), document_id=document_id)
        return Response(status=204)


class _AnyAccept(DefaultContentNegotiation):
    """The export picks its media type from ``?format=`` (not DRF's format suffix), and
    answers it whatever ``Accept`` says (errors stay JSON)."""

    class settings:  # stands in for DRF's api_settings
        URL_FORMAT_OVERRIDE = None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DocumentExportApi(APIView):
    """The content as plain text, Markdown or JSON (with the whole Yjs state)."""

    content_negotiation_class = _AnyAccept

    class FilterSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=list(FORMATS), default="markdown")

    @extend_schema(
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), default="markdown")
        ],
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): DocumentExportJson,
        },
    )
    def get(self, request, document_id):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        export = document_export(
            actor=actor_of(request),
            document_id=document_id,
            output=filters.validated_data["format"],
        )
        response = HttpResponse(export.body, content_type=export.media_type)
        # RFC 6266: an ASCII name for old clients, the real one (RFC 5987) for the others.
        fallback = export.filename.encode("ascii", "replace").decode().replace("?", "_")
        response["Content-Disposition"] = (
            f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(export.filename)}"
        )
        return response


class ShareListApi(APIView):
    """Who the document is shared with (documents.share); share it with someone."""

    @extend_schema(responses=DocumentShareOutput(many=True))
    def get(self, request, document_id):
        document = document_for(actor=actor_of(request), document_id=document_id, action=SHARE)
        return Response([_share(entry) for entry in document_shares(document=document)])

    @extend_schema(request=DocumentShareInput, responses=DocumentShareOutput)
    def post(self, request, document_id):
        values = _valid(DocumentShareInput, request)
        _, grants = document_share(
            actor=actor_of(request),
            document_id=document_id,
            principal=values["principal"],
            permission=values["permission"],
            can_share=values["can_share"],
        )
        first = grants[0]
        return Response(
            _share(
                {
                    "principal_type": first.principal_type,
                    "principal_id": first.principal_id,
                    "principal_label": first.principal_label,
                    "actions": {grant.action for grant in grants},
                }
            )
        )


class UserShareApi(APIView):
    """Take back what the document's share with this user gave."""

    @extend_schema(responses={204: None})
    def delete(self, request, document_id, user_id):
        document_unshare(
            actor=actor_of(request),
            document_id=document_id,
            principal_type="user",
            principal_id=str(user_id),
        )
        return Response(status=204)


class GroupShareApi(APIView):
    """Take back what the document's share with this group gave."""

    @extend_schema(responses={204: None})
    def delete(self, request, document_id, group):
        document_unshare(
            actor=actor_of(request),
            document_id=document_id,
            principal_type="group",
            principal_id=group,
        )
        return Response(status=204)


class VersionListApi(GenericAPIView):
    """The document's named versions, newest first; keep the current state as one."""

    serializer_class = DocumentVersionOutput

    @extend_schema(responses=DocumentVersionOutput(many=True))
    def get(self, request, document_id):
        document = document_visible(actor=actor_of(request), document_id=document_id)
        page = self.paginate_queryset(version_list(document=document))
        return self.get_paginated_response(DocumentVersionOutput(page, many=True).data)

    @extend_schema(request=DocumentVersionInput, responses={201: DocumentVersionOutput})
    def post(self, request, document_id):
        version = version_create(
            actor=actor_of(request),
            document_id=document_id,
            **_valid(DocumentVersionInput, request),
        )
        return Response(DocumentVersionOutput(version).data, status=201)


class VersionRestoreApi(APIView):
    """Make the content the version's again: a new update, history kept (documents.edit)."""

    @extend_schema(request=DocumentRestoreInput, responses=DocumentRestoreOutput)
    def post(self, request, document_id, version_id):
        version, seq = version_restore(
            actor=actor_of(request),
            document_id=document_id,
            version_id=version_id,
            **_valid(DocumentRestoreInput, request),
        )
        return Response(DocumentRestoreOutput({"version": version, "seq": seq}).data)


urlpatterns = [
    path("documents", DocumentListApi.as_view(), name="documents"),
    path("documents/<uuid:document_id>", DocumentDetailApi.as_view(), name="document"),
    path(
        "documents/<uuid:document_id>/export", DocumentExportApi.as_view(), name="document-export"
    ),
    path("documents/<uuid:document_id>/shares", ShareListApi.as_view(), name="document-shares"),
    path(
        "documents/<uuid:document_id>/shares/users/<uuid:user_id>",
        UserShareApi.as_view(),
        name="document-share-user",
    ),
    path(
        "documents/<uuid:document_id>/shares/groups/<str:group>",
        GroupShareApi.as_view(),
        name="document-share-group",
    ),
    path(
        "documents/<uuid:document_id>/versions",
        VersionListApi.as_view(),
        name="document-versions",
    ),
    path(
        "documents/<uuid:document_id>/versions/<uuid:version_id>/restore",
        VersionRestoreApi.as_view(),
        name="document-version-restore",
    ),
]
