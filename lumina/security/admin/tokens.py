"""Admin console pages for API tokens: read-only, with a revoke action.

There is no add page: tokens are created through the API or the CLI, which show the
secret once to the person who asked for it. The secret's hash is never displayed.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api.actors import actor_of
from lumina.security.api.admin import AdminPermissions, ReadOnlyAdmin, admin_may
from lumina.security.models.tokens import ApiToken
from lumina.security.services.tokens import (
    MANAGE_PERMISSION,
    token_revoke,
    tokens_manage_refusal,
)


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return (("no", "Not revoked"), ("yes", "Revoked"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    # Revoked tokens stay, so the audit trail keeps pointing at something.
    permissions = AdminPermissions(view=MANAGE_PERMISSION)
    list_display = (
        "prefix", "name", "user", "scope_list", "created_at", "expires_at", "last_used_at",
        "revoked_at",
    )  # fmt: skip
    list_filter = (RevokedFilter,)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__email")
    ordering = ("-created_at",)
    fields = (
        "id", "user", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at",
        "revoked_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ("revoke_tokens",)

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    @admin.action(description="Revoke selected API tokens", permissions=("revoke",))
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = actor_of(request)
        pending = queryset.filter(revoked_at__isnull=True).select_related("user")
        revoked = 0
        for token in pending:
            refusal = tokens_manage_refusal(actor, token.user_id)
            if refusal is not None:
                self.message_user(
                    request, f"Not revoked {token.prefix}…: {refusal}.", messages.ERROR
                )
                continue
            try:
                token_revoke(token_id=token.pk, actor=actor)
            except ApplicationError as error:
                self.message_user(request, f"{token.prefix}…: {error.message}", messages.ERROR)
            else:
                revoked += 1
        if revoked:
            self.message_user(request, f"Revoked {revoked} API token(s).", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return admin_may(request, MANAGE_PERMISSION)
