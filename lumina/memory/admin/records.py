"""Admin console pages for memories (read-only, with each fact's validity history),
extraction errors and scope policies.

People see their own memories here as through the API; everyone's needs
``memory.manage``. Changes go through the API and CLI, which keep history and events.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from lumina.memory.models.records import ExtractionError, Layer, MemoryRecord, ScopePolicy
from lumina.memory.selectors.record_access import MANAGE, READ
from lumina.security.api import AdminPermissions, ReadOnlyAdmin, actor_of, authorize


class _OwnMemories(ReadOnlyAdmin):
    permissions = AdminPermissions(view=READ)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        actor = actor_of(request)
        return rows if authorize(actor, MANAGE) else rows.filter(owner_id=actor.user_id)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "…"


@admin.register(MemoryRecord)
class MemoryRecordAdmin(_OwnMemories):
    list_display = ("short_text", "layer", "speaker", "session_id", "occurred_at",
                    "valid_from", "valid_to", "recorded_at", "superseded_at", "expired_at",
                    "owner_id")  # fmt: skip
    list_filter = ("layer", "extracted_by", ("superseded_at", admin.EmptyFieldListFilter),
                   ("expired_at", admin.EmptyFieldListFilter))  # fmt: skip
    date_hierarchy = "occurred_at"
    search_fields = ("=id", "=owner_id", "session_id", "fact_key", "text")
    ordering = ("-occurred_at",)
    exclude = ("embedding",)
    readonly_fields = ("validity_history",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("embedding", "search")

    @admin.display(description="text")
    def short_text(self, obj: MemoryRecord) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    @admin.display(description="validity history")
    def validity_history(self, obj: MemoryRecord) -> str:
        """Every version of this fact or block: when it held, when we believed it."""
        rows = MemoryRecord.objects.filter(owner_id=obj.owner_id, layer=obj.layer)
        if obj.layer == Layer.SEMANTIC and obj.fact_key:
            rows = rows.filter(fact_key=obj.fact_key)
        elif obj.layer == Layer.PINNED:
            rows = rows.filter(label=obj.label)
        else:
            return "Turns and summaries have one version."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{} – {}</td><td>{} – {}</td><td>{}</td></tr>",
            (
                (
                    row.text,
                    _when(row.valid_from),
                    _when(row.valid_to),
                    _when(row.recorded_at),
                    _when(row.superseded_at),
                    row.extracted_by or "",
                )
                for row in rows.defer("embedding", "search").order_by("recorded_at", "valid_from")
            ),
        )
        return format_html(
            "<table><tr><th>text</th><th>valid</th><th>believed</th><th>by</th></tr>{}</table>",
            body,
        )


@admin.register(ExtractionError)
class ExtractionErrorAdmin(_OwnMemories):
    list_display = ("created_at", "extractor", "error", "resolved_at", "owner_id")
    list_filter = ("extractor", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("=owner_id", "error")
    ordering = ("-created_at",)


@admin.register(ScopePolicy)
class ScopePolicyAdmin(_OwnMemories):
    list_display = ("owner_id", "scope", "ttl_days", "half_life_days", "updated_at")
    list_filter = ("scope",)
    search_fields = ("=owner_id",)
