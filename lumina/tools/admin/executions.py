"""Admin console page for executions: read-only, one's own or everyone's with
``tools.executions.read_all``, as through the API."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.security.api import AdminPermissions, ReadOnlyAdmin, actor_of
from lumina.tools.models import Execution
from lumina.tools.selectors.executions import visible_executions


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    permissions = AdminPermissions(view="tools.read")
    list_display = ("created_at", "tool_name", "tool_version", "status", "error_code",
                    "duration_ms", "actor_id", "run_id")  # fmt: skip
    list_filter = ("status", "asynchronous")
    date_hierarchy = "created_at"
    search_fields = ("=id", "tool_name", "=actor_id", "=run_id", "=model_call_id")
    ordering = ("-created_at",)
    readonly_fields = [field.name for field in Execution._meta.fields]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return visible_executions(actor_of(request)) & super().get_queryset(request)
