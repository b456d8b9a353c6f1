"""Admin console pages for providers, their models and the price list.

Every write goes through the registry services, so the console obeys the API's rules
and publishes the same events. The API key field is write-only: the stored key is
never displayed, only whether there is one.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from lumina.kernel.errors import ApplicationError
from lumina.providers.models.registry import Deployment, Price, Provider
from lumina.providers.pricing import describe
from lumina.providers.selectors.registry import deployment_info
from lumina.providers.services import registry as services
from lumina.providers.types import Capability
from lumina.security.api import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    ReadOnlyAdmin,
    actor_of,
)

CAPABILITY_CHOICES = [(c.value, c.value) for c in Capability]
TABLE_FILLED = ("input_price", "output_price", "context_window")


class _RegistryAdmin(PermissionAdmin):
    """Lumina's permissions decide, as they do for the API."""

    permissions = AdminPermissions(
        view="providers.read",
        add="providers.add",
        change="providers.change",
        delete="providers.delete",
    )


# --- Providers --------------------------------------------------------------------------


class ProviderForm(forms.ModelForm):
    new_api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        max_length=services.MAX_API_KEY_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted and never shown. Leave empty to keep the key.",
    )
    remove_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = Provider
        fields = (
            "name", "kind", "base_url", "new_api_key", "remove_api_key", "enabled", "priority",
            "weight", "max_concurrency", "connect_timeout", "read_timeout", "api_version", "tags",
        )  # fmt: skip

    # Set by ProviderAdmin.get_form: whose change this is.
    request: HttpRequest | None = None

    def clean(self) -> dict:
        data = super().clean()
        key = data.get("new_api_key")
        if key and data.get("remove_api_key"):
            self.add_error("remove_api_key", "Either give a new key or remove it, not both.")
        elif key:
            try:
                services.api_key_check(key)
            except ApplicationError as error:
                self.add_error("new_api_key", error.message)
        if self.instance._state.adding or "base_url" in self.changed_data:
            try:
                services.base_url_check(data.get("base_url") or "")
            except ApplicationError as error:
                self.add_error("base_url", error.message)
        if not self.instance._state.adding and self.request is not None:
            api_key = services.API_KEY_UNCHANGED
            if key or data.get("remove_api_key"):
                api_key = key or None
            problems = services.key_required_problems(
                actor=actor_of(self.request),
                has_stored_key=self.instance.has_api_key,
                changed=self.changed_data,
                api_key=api_key,
            )
            for field, messages in problems.items():
                self.add_error("new_api_key" if field == "api_key" else field, messages)
        return data


class DeploymentInline(PermissionInline, admin.TabularInline):
    """The provider's models, read-only here: each links to its own page."""

    permissions = AdminPermissions(view="providers.read")

    model = Deployment
    fields = ("name", "upstream_model", "capability_list", "context_window", "prices", "enabled")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="capabilities")
    def capability_list(self, deployment: Deployment) -> str:
        return ", ".join(deployment.capabilities)

    @admin.display(description="prices per million tokens")
    def prices(self, deployment: Deployment) -> str:
        return describe(deployment_info(deployment).prices)


@admin.register(Provider)
class ProviderAdmin(_RegistryAdmin):
    form = ProviderForm
    inlines = (DeploymentInline,)
    list_display = (
        "name", "kind", "base_url", "enabled", "has_key", "priority", "weight", "model_count",
        "revision", "updated_at",
    )  # fmt: skip
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = ("key_status", "revision", "created_at", "updated_at")
    ordering = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return super().get_queryset(request).annotate(model_total=Count("deployments"))

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    @admin.display(boolean=True, description="API key")
    def has_key(self, provider: Provider) -> bool:
        return provider.has_api_key

    @admin.display(description="API key")
    def key_status(self, provider: Provider) -> str:
        return "stored (encrypted)" if provider.has_api_key else "none"

    @admin.display(description="models", ordering="model_total")
    def model_count(self, provider: Provider) -> int:
        return getattr(provider, "model_total", 0)

    def save_model(self, request: HttpRequest, obj: Provider, form, change: bool) -> None:
        data = form.cleaned_data
        actor = actor_of(request)
        if not change:
            created = services.provider_create(
                actor=actor,
                api_key=data.get("new_api_key") or None,
                **{name: data[name] for name in services.PROVIDER_FIELDS if name in data},
            )
            obj.pk = created.id
            obj._state.adding = False
            return
        api_key = services.API_KEY_UNCHANGED
        if data.get("new_api_key"):
            api_key = data["new_api_key"]
        elif data.get("remove_api_key"):
            api_key = None
        services.provider_update(
            actor=actor,
            provider_id=obj.pk,
            api_key=api_key,
            **{name: data[name] for name in form.changed_data if name in services.PROVIDER_FIELDS},
        )

    def delete_model(self, request: HttpRequest, obj: Provider) -> None:
        services.provider_delete(actor=actor_of(request), provider_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider_id in list(queryset.values_list("pk", flat=True)):
            services.provider_delete(actor=actor_of(request), provider_id=provider_id)


# --- Models (deployments) ---------------------------------------------------------------


class DeploymentForm(forms.ModelForm):
    capabilities = forms.MultipleChoiceField(
        choices=CAPABILITY_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="New models: leave all unticked to take the price table's.",
    )
    upstream_model = forms.CharField(
        max_length=200, required=False, help_text="The provider's name for it; defaults to name."
    )
    input_price = forms.DecimalField(
        max_digits=20, decimal_places=10, min_value=0, required=False,
        help_text="US dollars per million tokens. New models: leave input and output empty "
        "to take the price table's prices for the upstream model.",
    )  # fmt: skip
    output_price = forms.DecimalField(
        max_digits=20, decimal_places=10, min_value=0, required=False,
        help_text="US dollars per million tokens.",
    )  # fmt: skip
    context_window = forms.IntegerField(
        min_value=1, required=False, help_text="New models: empty takes the price table's."
    )

    class Meta:
        model = Deployment
        fields = (
            "provider", "name", "upstream_model", "aliases", "capabilities", "context_window",
            "max_output_tokens", "input_price", "cached_input_price", "cache_write_price",
            "output_price", "reasoning_price", "enabled", "tags",
        )  # fmt: skip

    def clean(self) -> dict:
        data = super().clean()
        adding = self.instance._state.adding
        # What a new model leaves empty comes from the price table; the model's own
        # validation still needs values meanwhile.
        self.left_to_table = {name for name in TABLE_FILLED if data.get(name) is None and adding}
        if adding and not data.get("capabilities"):
            self.left_to_table.add("capabilities")
        for name in ("input_price", "output_price", "context_window"):
            if data.get(name) is None:
                if adding:
                    data[name] = Decimal(0) if name != "context_window" else 1
                else:
                    self.add_error(name, "This field is required.")
        if not data.get("upstream_model") and data.get("name"):
            data["upstream_model"] = data["name"]
        if not adding and "name" in self.changed_data:
            # The provider is read-only here, so the model form leaves this check out.
            siblings = Deployment.objects.filter(provider_id=self.instance.provider_id)
            if siblings.exclude(pk=self.instance.pk).filter(name=data.get("name")).exists():
                self.add_error("name", "This provider already has a model with this name.")
        return data


@admin.register(Deployment)
class DeploymentAdmin(_RegistryAdmin):
    # Adding or changing a provider's models is changing the provider.
    permissions = AdminPermissions(
        view="providers.read",
        add="providers.change",
        change="providers.change",
        delete="providers.change",
    )
    form = DeploymentForm
    list_display = (
        "qualified_name", "upstream_model", "capability_list", "context_window", "price_list",
        "price_source", "enabled",
    )  # fmt: skip
    list_filter = ("provider__kind", "provider", "enabled", "price_source")
    list_select_related = ("provider",)
    search_fields = ("name", "upstream_model", "provider__name")
    readonly_fields = ("price_source", "verified_list", "created_at", "updated_at")
    ordering = ("provider__name", "name")

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple:
        # A model moves to another provider by being added there.
        return (*self.readonly_fields, "provider") if obj is not None else self.readonly_fields

    @admin.display(description="model", ordering="name")
    def qualified_name(self, deployment: Deployment) -> str:
        return f"{deployment.provider.name}/{deployment.name}"

    @admin.display(description="capabilities")
    def capability_list(self, deployment: Deployment) -> str:
        return ", ".join(deployment.capabilities)

    @admin.display(description="prices per million tokens")
    def price_list(self, deployment: Deployment) -> str:
        return describe(deployment_info(deployment).prices)

    @admin.display(description="verified by the probe")
    def verified_list(self, deployment: Deployment) -> str:
        found = deployment_info(deployment).verified
        return (
            "; ".join(
                f"{v.capability}: {'ok' if v.ok else 'failed'}"
                + (f" in {v.latency_ms:g} ms" if v.latency_ms is not None else "")
                + (f" ({v.error})" if v.error else "")
                + (f" at {v.checked_at}" if v.checked_at else "")
                for v in found
            )
            or "not probed"
        )

    def save_model(self, request: HttpRequest, obj: Deployment, form, change: bool) -> None:
        data = dict(form.cleaned_data)
        actor = actor_of(request)
        if not change:
            for name in form.left_to_table:
                data[name] = None
            values = {
                name: data.get(name)
                for name in services.DEPLOYMENT_FIELDS
                if name != "price_source" and name in data
            }
            created = services.deployment_create(
                actor=actor, provider_id=data["provider"].pk, **values
            )
            obj.pk = created.id
            obj._state.adding = False
            return
        services.deployment_update(
            actor=actor,
            deployment_id=obj.pk,
            **{
                name: data[name] for name in form.changed_data if name in services.DEPLOYMENT_FIELDS
            },
        )

    def delete_model(self, request: HttpRequest, obj: Deployment) -> None:
        services.deployment_delete(actor=actor_of(request), deployment_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        for deployment_id in list(queryset.values_list("pk", flat=True)):
            services.deployment_delete(actor=actor_of(request), deployment_id=deployment_id)


# --- The price list ---------------------------------------------------------------------


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    """Read-only: the price list changes by importing a table (``providers prices import``)."""

    permissions = AdminPermissions(view="providers.read")

    list_display = (
        "model", "provider", "mode", "input_price", "cached_input_price", "cache_write_price",
        "output_price", "reasoning_price", "context_window", "source", "updated_at",
    )  # fmt: skip
    list_filter = ("provider", "mode", "source")
    search_fields = ("model",)
    ordering = ("model",)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple:
        return tuple(field.name for field in Price._meta.fields)
