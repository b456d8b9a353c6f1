"""Admin console pages for the tool registry and the HTTP tools' allow-list.

Every write goes through the registry services (contracts checked, a new version for each
change, events published), so the console obeys the API's rules. A tool's versions are
listed read-only: a version is never edited, a change saves the next one.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.kernel import outbound
from lumina.kernel.errors import ApplicationError
from lumina.security.api import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    actor_of,
    add_errors,
)
from lumina.tools.models import HttpAllowEntry, Tool, ToolVersion
from lumina.tools.models.registry import HTTP_METHODS
from lumina.tools.selectors.registry import version_of
from lumina.tools.services import registry as services
from lumina.tools.types import ToolKind

MANAGE = "tools.manage"


class ToolForm(forms.ModelForm):
    description = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )
    input_schema = forms.JSONField(
        required=False, help_text="JSON Schema of the arguments (type object)."
    )
    output_schema = forms.JSONField(
        required=False, help_text="JSON Schema of the result; empty for none."
    )
    source = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 12, "cols": 100}),
        help_text="python tools: define main(**arguments).",
    )  # fmt: skip
    http_url = forms.CharField(required=False, max_length=2000, help_text="http tools.")
    http_method = forms.ChoiceField(choices=HTTP_METHODS, initial="POST")
    builtin_name = forms.CharField(required=False, max_length=100, help_text="builtin tools.")
    mcp_tool_name = forms.CharField(required=False, max_length=200, help_text="mcp tools.")
    timeout_seconds = forms.FloatField(initial=services.DEFAULTS["timeout_seconds"], min_value=0.01)
    memory_mb = forms.IntegerField(initial=services.DEFAULTS["memory_mb"], min_value=16)
    output_bytes = forms.IntegerField(initial=services.DEFAULTS["output_bytes"], min_value=1024)
    network = forms.BooleanField(required=False)

    class Meta:
        model = Tool
        fields = ("name", "kind", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        version = version_of(self.instance) if not self.instance._state.adding else None
        if version is not None:
            for field in services.VERSION_FIELDS:
                self.initial[field] = getattr(version, field)

    def version_values(self) -> dict[str, Any]:
        return {field: self.cleaned_data.get(field) for field in services.VERSION_FIELDS}

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        kind = self.instance.kind if not self.instance._state.adding else data.get("kind")
        values = {
            **services.DEFAULTS,
            **{k: v for k, v in self.version_values().items() if v is not None},
        }
        try:
            services.version_check(ToolKind(kind), values, self.instance.mcp_server)
        except ApplicationError as error:
            add_errors(self, error)
        except ValueError:
            self.add_error("kind", "Choose a kind.")
        return data


class ToolVersionInline(PermissionInline, admin.TabularInline):
    permissions = AdminPermissions(view="tools.read")
    model = ToolVersion
    fields = (
        "number",
        "description",
        "timeout_seconds",
        "memory_mb",
        "network",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-number",)


@admin.register(Tool)
class ToolAdmin(PermissionAdmin):
    permissions = AdminPermissions(view="tools.read", add=MANAGE, change=MANAGE, delete=MANAGE)
    form = ToolForm
    inlines = (ToolVersionInline,)
    list_display = ("name", "kind", "version", "enabled", "mcp_server", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = ("version", "owner_id", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Tool | None = None):
        fixed = ("name", "kind") if obj is not None else ()
        return (*fixed, *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Tool, form: ToolForm, change: bool) -> None:
        actor = actor_of(request)
        values = {k: v for k, v in form.version_values().items() if v is not None}
        if not change:
            created = services.tool_create(
                actor=actor,
                name=form.cleaned_data["name"],
                kind=form.cleaned_data["kind"],
                enabled=form.cleaned_data["enabled"],
                **values,
            )
            obj.pk = created.id
            obj._state.adding = False
            return
        services.tool_update(
            actor=actor, tool=obj.pk, enabled=form.cleaned_data["enabled"], **values
        )

    def delete_model(self, request: HttpRequest, obj: Tool) -> None:
        services.tool_delete(actor=actor_of(request), tool=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        for tool_id in list(queryset.values_list("pk", flat=True)):
            services.tool_delete(actor=actor_of(request), tool=tool_id)


class AllowEntryForm(forms.ModelForm):
    class Meta:
        model = HttpAllowEntry
        fields = ("prefix", "description")

    def clean_prefix(self) -> str:
        prefix = self.cleaned_data["prefix"]
        try:
            outbound.check_url(prefix, field="prefix")
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
        return prefix


@admin.register(HttpAllowEntry)
class HttpAllowEntryAdmin(PermissionAdmin):
    permissions = AdminPermissions.full(MANAGE)
    form = AllowEntryForm
    list_display = ("prefix", "description", "created_at")
    search_fields = ("prefix",)

    def get_readonly_fields(self, request: HttpRequest, obj: HttpAllowEntry | None = None):
        return ("prefix", "created_at") if obj is not None else ("created_at",)

    def save_model(self, request, obj: HttpAllowEntry, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.http_allow_add(
            actor=actor_of(request),
            prefix=form.cleaned_data["prefix"],
            description=form.cleaned_data.get("description") or "",
        )
        obj.pk = created.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: HttpAllowEntry) -> None:
        services.http_allow_remove(actor=actor_of(request), entry_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[HttpAllowEntry]) -> None:
        for entry_id in list(queryset.values_list("pk", flat=True)):
            services.http_allow_remove(actor=actor_of(request), entry_id=entry_id)
