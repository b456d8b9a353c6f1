"""Admin pages for OIDC login: identity providers (secret write-only), linked identities."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from lumina.kernel.lazy import lazy_module
from lumina.security.api.actors import actor_of
from lumina.security.api.admin import AdminPermissions, PermissionAdmin
from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.services.users import MANAGE as USERS_MANAGE
from lumina.security.services.users import user_credentials_manageable

# authlib and joserfc load with the first OIDC call, not with the admin.
services = lazy_module("lumina.security.services.oidc")

IDENTITY_PROVIDERS_MANAGE = "security.identity_providers.manage"


class IdentityProviderForm(forms.ModelForm):
    issuer = forms.URLField(
        max_length=500, assume_scheme="https", help_text="Exactly as the provider states it."
    )
    client_secret = forms.CharField(
        required=False,
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: never shown again. Leave empty to keep the stored secret.",
    )

    # Set by IdentityProviderAdmin.get_form: whose change this is.
    request: HttpRequest | None = None

    class Meta:
        model = IdentityProvider
        fields = (
            "slug", "display_name", "issuer", "client_id", "client_secret", "scopes",
            "enabled", "allow_signup", "link_by_verified_email",
        )  # fmt: skip

    def clean(self) -> dict:
        cleaned = super().clean()
        new_issuer = self.instance._state.adding or "issuer" in self.changed_data
        problems = services.identity_provider_problems(
            issuer=cleaned.get("issuer") if new_issuer else None, scopes=cleaned.get("scopes")
        )
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field, message)
        if self.instance._state.adding and not cleaned.get("client_secret"):
            self.add_error("client_secret", "A new identity provider needs its client secret.")
        elif self.request is not None:
            problems = services.secret_required_problems(
                actor=actor_of(self.request),
                has_stored_secret=bool(self.instance.client_secret_encrypted),
                changed=self.changed_data,
                client_secret=cleaned.get("client_secret"),
            )
            for field, messages in problems.items():
                self.add_error(field, messages)
        return cleaned


@admin.register(IdentityProvider)
class IdentityProviderAdmin(PermissionAdmin):
    permissions = AdminPermissions.full(IDENTITY_PROVIDERS_MANAGE)
    form = IdentityProviderForm
    list_display = ("slug", "display_name", "issuer", "enabled", "allow_signup",
                    "link_by_verified_email", "updated_at")  # fmt: skip
    list_filter = ("enabled", "allow_signup", "link_by_verified_email")
    search_fields = ("slug", "display_name", "issuer")
    readonly_fields = ("created_at", "updated_at")

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_readonly_fields(self, request, obj=None):
        # The slug is in the callback URL registered at the provider.
        return (*self.readonly_fields, "slug") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        data = form.cleaned_data
        secret = data.get("client_secret") or None
        if change:
            changes = {
                name: data[name] for name in form.changed_data if name in services.EDITABLE_FIELDS
            }
            services.identity_provider_update(
                provider=IdentityProvider.objects.get(pk=obj.pk),
                actor=actor_of(request),
                client_secret=secret,
                **changes,
            )
            return
        created = services.identity_provider_create(
            slug=data["slug"],
            display_name=data["display_name"],
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=secret,
            scopes=data["scopes"],
            enabled=data["enabled"],
            allow_signup=data["allow_signup"],
            link_by_verified_email=data["link_by_verified_email"],
            actor=actor_of(request),
        )
        obj.pk = created.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj) -> None:
        services.identity_provider_delete(provider=obj, actor=actor_of(request))

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for provider in queryset:
            services.identity_provider_delete(provider=provider, actor=actor_of(request))


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(PermissionAdmin):
    # Unlinking is changing how someone logs in: only for accounts the actor outranks.
    permissions = AdminPermissions(view=USERS_MANAGE, delete=USERS_MANAGE)
    list_display = ("user", "provider", "subject", "email_at_link", "created_at", "last_login_at")
    list_filter = ("provider",)
    search_fields = ("user__email", "subject", "email_at_link")
    list_select_related = ("user", "provider")
    fields = list_display
    readonly_fields = list_display

    def may_manage(self, request: HttpRequest, obj) -> bool:
        return user_credentials_manageable(actor_of(request), obj.user)

    def delete_model(self, request: HttpRequest, obj) -> None:
        services.external_identity_unlink(identity=obj, actor=actor_of(request))

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for identity in queryset.select_related("provider", "user"):
            if not self.may_manage(request, identity):
                raise PermissionDenied
        for identity in queryset.select_related("provider"):
            services.external_identity_unlink(identity=identity, actor=actor_of(request))
