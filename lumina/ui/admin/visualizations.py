"""Admin console page for visualizations: operators (``visualizations.manage``) list,
read and delete anyone's charts; specs are written through the API, which checks them."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.security.api import AdminPermissions, PermissionAdmin, actor_of
from lumina.ui.models import Visualization
from lumina.ui.selectors.visualizations import MANAGE
from lumina.ui.services.visualizations import visualization_delete


@admin.register(Visualization)
class VisualizationAdmin(PermissionAdmin):
    permissions = AdminPermissions(view=MANAGE, delete=MANAGE)
    list_display = ("name", "owner_id", "updated_at", "created_at")
    search_fields = ("name", "=id", "=owner_id")
    date_hierarchy = "updated_at"
    ordering = ("-updated_at",)
    readonly_fields = [field.name for field in Visualization._meta.fields]

    def delete_model(self, request: HttpRequest, obj: Visualization) -> None:
        visualization_delete(actor=actor_of(request), visualization_id=obj.id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for found in queryset:
            self.delete_model(request, found)
