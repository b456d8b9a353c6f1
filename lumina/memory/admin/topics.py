"""Admin console pages for topics (with their records and children), entities and relations.

Read-only, like the memories they are computed from: people see their own, everyone's
needs ``memory.manage``. Topics are (re)extracted through the API and CLI, which publish
``TopicsExtracted``.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from lumina.memory.admin.records import _OwnMemories
from lumina.memory.models.topics import Entity, Relation, RelationEvidence, Topic, TopicMembership

MEMBERS_SHOWN = 50


@admin.register(Topic)
class TopicAdmin(_OwnMemories):
    list_display = ("label", "scope", "scope_key", "level", "size", "parent", "updated_at",
                    "owner_id")  # fmt: skip
    list_filter = ("scope", "level")
    search_fields = ("=id", "=owner_id", "scope_key", "label")
    ordering = ("owner_id", "scope", "scope_key", "-level", "-size")
    exclude = ("centroid",)
    readonly_fields = ("keyword_table", "children_list", "members")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("centroid").select_related("parent")

    @admin.display(description="keywords (c-TF-IDF weight)")
    def keyword_table(self, obj: Topic) -> str:
        pairs = zip(obj.keywords, obj.keyword_weights, strict=False)
        return format_html_join(", ", "{} ({})", ((k, f"{w:.3f}") for k, w in pairs))

    @admin.display(description="children")
    def children_list(self, obj: Topic) -> str:
        children = obj.children.order_by("-size")
        return format_html_join(", ", "{} ({})", ((c.label, c.size) for c in children)) or "…"

    @admin.display(description=f"records (closest {MEMBERS_SHOWN} to the centre)")
    def members(self, obj: Topic) -> str:
        leaves = [obj.id] if obj.level == 0 else list(obj.children.values_list("id", flat=True))
        rows = (
            TopicMembership.objects.filter(topic_id__in=leaves)
            .select_related("record", "vector")
            .order_by("-similarity")[:MEMBERS_SHOWN]
        )
        items = (
            (f"{m.similarity:.2f}", (m.record.text if m.record else m.vector.text)[:120])
            for m in rows
        )
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", items))


@admin.register(Entity)
class EntityAdmin(_OwnMemories):
    list_display = ("name", "kind", "mention_count", "first_seen_at", "last_seen_at", "owner_id")
    list_filter = ("kind",)
    search_fields = ("=id", "=owner_id", "key", "name")
    ordering = ("owner_id", "-mention_count")


@admin.register(Relation)
class RelationAdmin(_OwnMemories):
    list_display = ("source", "kind", "target", "weight", "extracted_by", "last_seen_at",
                    "owner_id")  # fmt: skip
    list_filter = ("kind", "extracted_by")
    search_fields = ("=id", "=owner_id", "source__name", "target__name")
    ordering = ("owner_id", "-weight")
    readonly_fields = ("provenance",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source", "target")

    @admin.display(description="read from")
    def provenance(self, obj: Relation) -> str:
        rows = (
            RelationEvidence.objects.filter(relation=obj)
            .select_related("record")
            .order_by("-record__occurred_at")[:MEMBERS_SHOWN]
        )
        items = ((e.record.occurred_at.date(), e.quote or e.record.text[:120]) for e in rows)
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", items))
