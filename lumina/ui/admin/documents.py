"""Admin console pages for documents and their versions.

People see the documents they may read (their own and those shared with them), as
through the API; everyone's needs ``documents.manage``. Renames, deletes and restores go
through the services, which check the document's own permissions and publish events;
content is edited in the editors, over the websocket.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from lumina.kernel.errors import ApplicationError
from lumina.security.api import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    ReadOnlyAdmin,
    actor_of,
)
from lumina.ui.models import Document, DocumentSnapshot, DocumentUpdate, DocumentVersion
from lumina.ui.selectors.document_access import EDIT, MANAGE, READ, may, reach_of
from lumina.ui.selectors.documents import document_shares
from lumina.ui.services import documents as services
from lumina.ui.services.versions import version_restore


def _readable(request: HttpRequest) -> Q:
    """The documents the request's actor may read."""
    reach = reach_of(actor_of(request))
    if reach.manages:
        return Q()
    return Q(owner_id=reach.user_id) | Q(id__in=list(reach.shared.get(READ, ())))


class VersionInline(PermissionInline, admin.TabularInline):
    permissions = AdminPermissions(view=READ)
    model = DocumentVersion
    fields = ("name", "upto_seq", "created_by_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(PermissionAdmin):
    # Created through the API (or ``manage.py documents import``), with an owner.
    permissions = AdminPermissions(view=READ, change=EDIT, delete=EDIT)
    bulk_delete = False
    inlines = (VersionInline,)
    fields = ("title", "owner_id", "created_at", "updated_at", "history", "shares")
    readonly_fields = ("owner_id", "created_at", "updated_at", "history", "shares")
    list_display = ("title", "owner_id", "updated_at", "created_at")
    search_fields = ("title", "=id", "=owner_id")
    ordering = ("-updated_at",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(_readable(request), deleted_at__isnull=True)

    def may_manage(self, request: HttpRequest, obj: Document) -> bool:
        return may(actor_of(request), EDIT, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # As through the API: the owner or a manager, never a share.
        if not super().has_delete_permission(request, obj):
            return False
        actor = actor_of(request)
        return obj is None or obj.owner_id == actor.user_id or may(actor, MANAGE, obj)

    @admin.display(description="history")
    def history(self, obj: Document) -> str:
        updates = DocumentUpdate.objects.filter(document=obj)
        last = updates.order_by("-seq").values_list("seq", flat=True).first() or 0
        snapshot = (
            DocumentSnapshot.objects.filter(document=obj)
            .order_by("-upto_seq")
            .values_list("upto_seq", flat=True)
            .first()
        )
        return f"{updates.count()} updates (last seq {last}); snapshot up to {snapshot or '—'}"

    @admin.display(description="shared with")
    def shares(self, obj: Document) -> str:
        rows = document_shares(document=obj)
        if not rows:
            return "nobody"
        return format_html_join(
            ", ",
            "{} ({})",
            ((row["principal_label"], ", ".join(sorted(row["actions"]))) for row in rows),
        )

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        services.document_rename(
            actor=actor_of(request), document_id=obj.pk, title=form.cleaned_data["title"]
        )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(actor=actor_of(request), document_id=obj.pk)


@admin.register(DocumentVersion)
class DocumentVersionAdmin(ReadOnlyAdmin):
    permissions = AdminPermissions(view=READ)
    list_display = ("name", "document", "upto_seq", "created_by_id", "created_at")
    fields = ("document", "name", "upto_seq", "created_by_id", "created_at")
    search_fields = ("name", "=document__id")
    ordering = ("-created_at",)
    actions = ("restore",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        readable = Document.objects.filter(_readable(request), deleted_at__isnull=True)
        return super().get_queryset(request).filter(document__in=readable).defer("state")

    @admin.action(description="Restore the selected version (a new update; history kept)")
    def restore(self, request: HttpRequest, queryset: QuerySet[DocumentVersion]) -> None:
        actor = actor_of(request)
        for version in queryset.only("id", "document_id", "name"):
            try:
                _, seq = version_restore(
                    actor=actor, document_id=version.document_id, version_id=version.id
                )
            except ApplicationError as error:
                self.message_user(request, f"{version.name}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Restored {version.name} as update {seq}.")
