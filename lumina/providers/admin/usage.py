"""Admin console pages: the usage ledger and daily rollups (read-only), and budgets.

People see their own usage and budgets here as through the API; everyone's needs
``providers.usage.read_all``.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.providers.models.usage import Budget, DailyUsage, UsageRecord
from lumina.providers.selectors.visibility import budget_rows_visible, sees_everyones_usage
from lumina.providers.services.budgets import BUDGETS_MANAGE, budget_cache_invalidate
from lumina.security.api import AdminPermissions, PermissionAdmin, ReadOnlyAdmin, actor_of


class _OwnUsage(ReadOnlyAdmin):
    permissions = AdminPermissions(view="providers.read")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        actor = actor_of(request)
        return rows if sees_everyones_usage(actor) else rows.filter(user_id=actor.user_id)


@admin.register(UsageRecord)
class UsageRecordAdmin(_OwnUsage):
    list_display = ("occurred_at", "operation", "status", "provider_name", "model", "user_id",
                    "input_tokens", "output_tokens", "cost", "estimated", "latency_ms")  # fmt: skip
    list_filter = ("status", "operation", "provider_name", "model", "estimated", "stream")
    date_hierarchy = "occurred_at"
    search_fields = ("=id", "=request_id", "=user_id", "=token_id", "requested_model")
    ordering = ("-occurred_at",)
    readonly_fields = [field.name for field in UsageRecord._meta.fields]
    # Counting every row of a large ledger for the paginator is what makes such pages slow.
    show_full_result_count = False


@admin.register(DailyUsage)
class DailyUsageAdmin(_OwnUsage):
    list_display = ("day", "provider_name", "model", "operation", "user_id", "token_id",
                    "requests", "errors", "estimated", "cost")  # fmt: skip
    list_filter = ("operation", "provider_name", "model")
    date_hierarchy = "day"
    search_fields = ("=user_id", "=token_id", "model")
    ordering = ("-day", "provider_name", "model")
    readonly_fields = [field.name for field in DailyUsage._meta.fields]


@admin.register(Budget)
class BudgetAdmin(PermissionAdmin):
    permissions = AdminPermissions(
        view="providers.read",
        add=BUDGETS_MANAGE,
        change=BUDGETS_MANAGE,
        delete=BUDGETS_MANAGE,
    )
    list_display = ("__str__", "scope", "subject_id", "period", "limit_usd", "requests_per_minute",
                    "tokens_per_minute", "enabled", "updated_at")  # fmt: skip
    list_filter = ("scope", "period", "enabled")
    search_fields = ("=subject_id", "name")
    readonly_fields = ("id", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(budget_rows_visible(actor_of(request)))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        budget_cache_invalidate()

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        budget_cache_invalidate()

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        budget_cache_invalidate()
