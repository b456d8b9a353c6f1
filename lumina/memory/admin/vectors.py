"""Admin console pages for vector collections and their records.

People see their own collections as through the API; everyone's needs ``memory.manage``.
Creating, changing and deleting a collection go through the services, which build and
drop its HNSW index; records are read-only here (the API writes them).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.memory.models.vectors import Collection, VectorRecord
from lumina.memory.services.vectors import (
    collection_create,
    collection_delete,
    collection_update,
    may_manage,
)
from lumina.security.api import AdminPermissions, PermissionAdmin, ReadOnlyAdmin, actor_of

READ, WRITE = "memory.read", "memory.write"
CREATE_FIELDS = ("name", "description", "embedding_model", "dimension", "distance",
                 "hnsw_m", "hnsw_ef_construction", "default_ef_search")  # fmt: skip
CHANGE_FIELDS = ("description", "default_ef_search")


def _visible(request: HttpRequest, rows: QuerySet, owner_field: str) -> QuerySet:
    actor = actor_of(request)
    return rows if may_manage(actor) else rows.filter(**{owner_field: actor.user_id})


class CollectionForm(forms.ModelForm):
    """Checked by ``collection_create`` / ``collection_update``; their refusals are shown
    on the form field by field."""

    embedding_model = forms.CharField(
        required=False, max_length=200, help_text="Empty: records bring their own vectors."
    )

    class Meta:
        model = Collection
        fields = CREATE_FIELDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request: HttpRequest | None = None

    def clean(self):
        data = super().clean()
        if self.errors or self.request is None:
            return data
        actor = actor_of(self.request)
        try:
            if self.instance._state.adding:
                options = {name: data.get(name) for name in CREATE_FIELDS}
                self.created = collection_create(actor=actor, **options)
            else:
                changes = {name: data.get(name) for name in CHANGE_FIELDS}
                self.changed = collection_update(actor=actor, ref=self.instance.pk, **changes)
        except ApplicationError as error:
            for field, problems in error.fields.items():
                self.add_error(field if field in self.fields else None, problems)
            if not error.fields:
                self.add_error(None, error.message)
        return data


@admin.register(Collection)
class CollectionAdmin(PermissionAdmin):
    permissions = AdminPermissions(view=READ, add=WRITE, change=WRITE, delete=WRITE)
    form = CollectionForm
    bulk_delete = False
    list_display = ("name", "owner_id", "embedding_model", "dimension", "distance",
                    "record_count", "pending_model", "updated_at")  # fmt: skip
    list_filter = ("distance", "embedding_model")
    search_fields = ("=id", "=owner_id", "name")
    ordering = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return _visible(request, super().get_queryset(request), "owner_id")

    def get_fields(self, request: HttpRequest, obj: Collection | None = None):
        if obj is None:
            return CREATE_FIELDS
        return (*CREATE_FIELDS, "owner_id", "record_count", "metadata_fields", "active_slot",
                "pending_model", "pending_dimension", "created_at", "updated_at")  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Collection | None = None):
        if obj is None:
            return ()
        return tuple(f for f in self.get_fields(request, obj) if f not in CHANGE_FIELDS)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class WithRequest(form_class):
            def __init__(self, *args, **inner) -> None:
                super().__init__(*args, **inner)
                self.request = request

        return WithRequest

    def save_model(self, request, obj, form, change) -> None:
        # The form's clean() already ran the service; show the row it wrote.
        saved = getattr(form, "created", None) or getattr(form, "changed", None)
        if saved is not None:
            obj.pk = saved.id
            obj._state.adding = False
            obj.refresh_from_db()

    def delete_model(self, request, obj) -> None:
        try:
            collection_delete(actor=actor_of(request), ref=obj.pk)
        except ApplicationError as error:
            self.message_user(request, error.message, level=messages.ERROR)


@admin.register(VectorRecord)
class VectorRecordAdmin(ReadOnlyAdmin):
    permissions = AdminPermissions(view=READ)
    list_display = ("external_id", "collection", "short_text", "updated_at")
    search_fields = ("=external_id", "text")
    list_select_related = ("collection",)
    exclude = ("vector_0", "vector_1", "search")
    ordering = ("-updated_at",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request).defer("vector_0", "vector_1", "search")
        return _visible(request, rows, "collection__owner_id")

    @admin.display(description="text")
    def short_text(self, obj: VectorRecord) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"
