"""Admin console pages for API tokens: read-only, with a revoke action.

There is no add page: tokens are created through the API or the CLI, which show the
secret once to the person who asked for it. The secret's hash is never displayed.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lumina.security.models.tokens import ApiToken
from lumina.security.services.tokens import token_revoke
from lumina.security.types import Actor


def _actor(request: HttpRequest) -> Actor:
    user = request.user
    return Actor(
        user_id=user.pk,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_staff,
        is_active=user.is_active,
        ip_address=request.META.get("REMOTE_ADDR"),
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
class ApiTokenAdmin(admin.ModelAdmin):
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
        actor = _actor(request)
        pending = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for token_id in pending:
            token_revoke(token_id=token_id, actor=actor)
        self.message_user(request, f"Revoked {len(pending)} API token(s).", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("security.change_apitoken")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Revoked tokens stay, so the audit trail keeps pointing at something.
        return False
