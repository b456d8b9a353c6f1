"""Admin console pages for policies, with their versions shown read-only.

Writes go through the services: the Cedar text is validated, a changed text becomes a
new version, and every change is audited and reaches ``authorize``'s caches.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.security.api.actors import actor_of
from lumina.security.api.admin import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    add_errors,
)
from lumina.security.models.policies import Policy, PolicyVersion
from lumina.security.selectors.policies import policy_current_text
from lumina.security.services import policies as services


class PolicyVersionInline(PermissionInline, admin.TabularInline):
    model = PolicyVersion
    fields = ("version", "cedar", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-version",)
    extra = 0
    can_delete = False
    show_change_link = False

    permissions = AdminPermissions(view=services.MANAGE)


class PolicyForm(forms.ModelForm):
    policy = forms.CharField(
        label="Cedar",
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100, "style": "font-family: monospace"}),
        strip=False,
        max_length=services.MAX_POLICY_CHARS,
        help_text="Forbid statements only; saving changed text creates a new version.",
    )

    class Meta:
        model = Policy
        fields = ("name", "description", "enabled")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["policy"].initial = policy_current_text(policy=self.instance)

    def clean(self) -> dict:
        data = super().clean()
        try:
            if "name" in data:
                data["name"] = services.policy_name_validate(data["name"])
            if "policy" in data:
                services.policy_text_validate(data["policy"])
        except ApplicationError as error:
            add_errors(self, error)
        return data


@admin.register(Policy)
class PolicyAdmin(PermissionAdmin):
    permissions = AdminPermissions.full(services.MANAGE)
    bulk_delete = False
    form = PolicyForm
    inlines = (PolicyVersionInline,)
    list_display = ("name", "enabled", "version", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    ordering = ("name",)

    def save_model(self, request: HttpRequest, obj: Policy, form, change: bool) -> None:
        data = form.cleaned_data
        actor = actor_of(request)
        if not change:
            created = services.policy_create(
                actor=actor,
                name=data["name"],
                cedar_text=data["policy"],
                description=data.get("description", ""),
                enabled=data.get("enabled", True),
            )
            obj.pk = created.pk
            return
        services.policy_update(
            actor=actor,
            policy_id=obj.pk,
            name=data.get("name"),
            description=data.get("description"),
            enabled=data.get("enabled"),
            cedar_text=data.get("policy"),
        )

    def delete_model(self, request: HttpRequest, obj: Policy) -> None:
        services.policy_delete(actor=actor_of(request), policy_id=obj.pk)
