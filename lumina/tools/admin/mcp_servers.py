"""Admin console pages for MCP servers: register, enable or disable, import their tools.

Every write goes through the MCP services, so the console obeys the API's rules (the
operator's stdio programs, the outbound guard, sealed secrets) and publishes the same
events. Environment variables and headers are write-only: only whether any are set shows.
"""

from __future__ import annotations

import shlex

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api import AdminPermissions, PermissionAdmin, actor_of, add_errors
from lumina.tools.models import McpServer
from lumina.tools.services import mcp as services

PAIRS_HELP = (
    "One NAME=VALUE a line. Write-only: stored encrypted, never shown. Leave empty to keep."
)


def _pairs(text: str, field: str) -> dict[str, str] | None:
    if not text.strip():
        return None
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise forms.ValidationError(f"{field}: write NAME=VALUE on each line.")
        pairs[name.strip()] = value
    return pairs


class McpServerForm(forms.ModelForm):
    command_line = forms.CharField(
        label="Command",
        required=False,
        max_length=8000,
        help_text="stdio: the program and its arguments (shell quoting). The program must be "
        "listed in LUMINA_MCP_STDIO_COMMANDS.",
    )
    new_env = forms.CharField(
        label="Environment", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=PAIRS_HELP,
    )  # fmt: skip
    new_headers = forms.CharField(
        label="Headers", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=PAIRS_HELP,
    )  # fmt: skip

    class Meta:
        model = McpServer
        fields = ("name", "transport", "url", "enabled", "timeout_seconds")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.command:
            self.initial["command_line"] = shlex.join(self.instance.command)

    def clean(self) -> dict:
        data = super().clean()
        try:
            data["command"] = shlex.split(data.get("command_line") or "")
        except ValueError as error:
            self.add_error("command_line", f"Unbalanced quoting: {error}")
        for field, label in (("new_env", "Environment"), ("new_headers", "Headers")):
            try:
                data[field] = _pairs(data.get(field) or "", label)
            except forms.ValidationError as error:
                self.add_error(field, error)
        if not self.instance._state.adding:
            stdio = self.instance.transport == McpServer.Transport.STDIO
            if data.get("new_env") and not stdio:
                self.add_error("new_env", "Environment variables are for a stdio MCP server.")
            if data.get("new_headers") and stdio:
                self.add_error("new_headers", "Headers are for an HTTP MCP server.")
        elif not self.errors:
            try:
                services.mcp_server_check(
                    transport=data.get("transport") or "",
                    command=data.get("command"),
                    url=data.get("url") or "",
                    env=data.get("new_env"),
                    headers=data.get("new_headers"),
                )
            except ApplicationError as error:
                add_errors(self, _form_fields(error))
        return data


def _form_fields(error: ApplicationError) -> ApplicationError:
    """The service's field names as the form's."""
    names = {"command": "command_line", "env": "new_env", "headers": "new_headers"}
    fields = {names.get(key, key): value for key, value in error.fields.items()}
    return ApplicationError(error.message, fields=fields)


@admin.register(McpServer)
class McpServerAdmin(PermissionAdmin):
    permissions = AdminPermissions.full("tools.manage")
    form = McpServerForm
    list_display = (
        "name", "transport", "where", "enabled", "tool_count", "last_synced_at", "last_error",
    )  # fmt: skip
    list_filter = ("transport", "enabled")
    search_fields = ("name", "url")
    readonly_fields = ("secrets", "tool_list", "last_synced_at", "last_error", "created_at")
    actions = ("import_tools",)
    bulk_delete = True

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fixed = ("name", "transport", "command_line", "url") if obj is not None else ()
        return (*fixed, *self.readonly_fields)

    @admin.display(description="command or URL")
    def where(self, server: McpServer) -> str:
        return shlex.join(server.command) if server.command else server.url

    @admin.display(description="command")
    def command_line(self, server: McpServer) -> str:
        return shlex.join(server.command) if server.command else ""

    @admin.display(description="tools")
    def tool_count(self, server: McpServer) -> int:
        return server.tools.count()

    @admin.display(description="tools")
    def tool_list(self, server: McpServer) -> str:
        return ", ".join(server.tools.values_list("name", flat=True)) or "none imported"

    @admin.display(description="environment / headers")
    def secrets(self, server: McpServer) -> str:
        return "set (encrypted)" if server.env_secret or server.headers_secret else "none"

    def save_model(self, request: HttpRequest, obj: McpServer, form, change: bool) -> None:
        data = form.cleaned_data
        actor = actor_of(request)
        if not change:
            created = services.mcp_server_register(
                actor=actor,
                name=data["name"],
                transport=data["transport"],
                command=data.get("command") or None,
                url=data.get("url") or "",
                env=data.get("new_env"),
                headers=data.get("new_headers"),
                timeout_seconds=data["timeout_seconds"],
                enabled=data["enabled"],
            )
            obj.pk = created.id
            obj._state.adding = False
            return
        services.mcp_server_update(
            actor=actor,
            server=obj.pk,
            enabled=data["enabled"],
            timeout_seconds=data["timeout_seconds"],
            env=data.get("new_env"),
            headers=data.get("new_headers"),
        )

    def delete_model(self, request: HttpRequest, obj: McpServer) -> None:
        services.mcp_server_delete(actor=actor_of(request), server=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server_id in list(queryset.values_list("pk", flat=True)):
            services.mcp_server_delete(actor=actor_of(request), server=server_id)

    @admin.action(description="Import their tools now")
    def import_tools(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            try:
                report = services.mcp_tools_import(actor=actor_of(request), server=server.pk)
            except ApplicationError as error:
                self.message_user(request, f"{server.name}: {error.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{server.name}: {len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.unchanged)} unchanged, {len(report.disabled)} disabled, "
                f"{len(report.skipped)} skipped.",
            )
