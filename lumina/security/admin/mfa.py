"""The admin console's second factor, and MFA device pages for support (never secrets).

Staff who have a confirmed device log in with their password and a code (django-otp's
``OTPAdminSite`` form). With ``LUMINA_REQUIRE_STAFF_MFA`` on, staff without one are
walked through enrolling an authenticator app before any other admin page; with it off
(the development default) they log in with the password alone.
"""

from __future__ import annotations

import base64
from functools import wraps
from urllib.parse import urlencode

import django_otp
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.sites import AdminSite
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from lumina.kernel.errors import ApplicationError
from lumina.security.http.actors import client_ip
from lumina.security.models.mfa import BackupCodesDevice, TotpDevice
from lumina.security.selectors.mfa import totp_device_pending, user_has_confirmed_device
from lumina.security.services import mfa as services


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Password, then a code only for staff who have a confirmed device."""

    def clean(self) -> dict:
        self.cleaned_data = AdminAuthenticationForm.clean(self)
        user = self.get_user()
        if user is not None and user_has_confirmed_device(user=user):
            token = services.normalize_code(self.cleaned_data.get("otp_token") or "")
            if not token:
                raise forms.ValidationError(
                    self.otp_error_messages["token_required"], code="token_required"
                )
            # The same check as the REST verify endpoint: wrong codes count towards the
            # lockout and every attempt is audited.
            try:
                device = services.mfa_verify(
                    user=user, code=token, ip_address=client_ip(self.request)
                )
            except ApplicationError:
                raise forms.ValidationError(
                    self.otp_error_messages["invalid_token"], code="invalid_token"
                ) from None
            # django-otp's login signal records the verified device in the session.
            user.otp_device = device
        return self.cleaned_data


def _is_staff(request: HttpRequest) -> bool:
    user = request.user
    return user.is_authenticated and user.is_active and user.is_staff


def _is_verified(request: HttpRequest) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


def needs_enrolment(request: HttpRequest) -> bool:
    """Staff without a device, when the setting requires every staff member to have one."""
    return (
        settings.LUMINA_REQUIRE_STAFF_MFA
        and _is_staff(request)
        and not _is_verified(request)
        and not user_has_confirmed_device(user=request.user)
    )


class LuminaAdminSite(OTPAdminSite):
    """``OTPAdminSite`` that asks for a code only from staff who have a device."""

    login_form = StaffLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        if not AdminSite.has_permission(self, request):
            return False
        if _is_verified(request):
            return True
        return not settings.LUMINA_REQUIRE_STAFF_MFA and not user_has_confirmed_device(
            user=request.user
        )

    def admin_view(self, view, cacheable: bool = False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def enrol_first(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if needs_enrolment(request):
                return _to_enrolment(request, self.name)
            return inner(request, *args, **kwargs)

        return enrol_first

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method == "GET" and needs_enrolment(request):
            return _to_enrolment(request, self.name)
        return super().login(request, extra_context)

    def get_urls(self) -> list:
        enrol = csrf_protect(never_cache(self.mfa_enrol_view))
        return [path("mfa/enrol/", enrol, name="mfa_enrol"), *super().get_urls()]

    def mfa_enrol_view(self, request: HttpRequest) -> HttpResponse:
        """Show the QR code of a new authenticator app and confirm it with a first code."""
        index = reverse("admin:index", current_app=self.name)
        if not _is_staff(request):
            return HttpResponseRedirect(reverse("admin:login", current_app=self.name))
        if request.method == "POST" and "logout" in request.POST:
            logout(request)
            return HttpResponseRedirect(reverse("admin:login", current_app=self.name))
        next_url = _safe_next(request) or index
        if user_has_confirmed_device(user=request.user):
            return HttpResponseRedirect(next_url)

        form = EnrolForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                device = services.totp_confirm(
                    user=request.user, code=form.cleaned_data["code"], ip_address=client_ip(request)
                )
            except ApplicationError as exc:
                form.add_error("code", exc.message)
            else:
                django_otp.login(request, device)
                request.session.cycle_key()
                messages.success(request, "Two-factor authentication is on for your account.")
                return HttpResponseRedirect(next_url)

        device = totp_device_pending(user=request.user)
        enrolment = (
            services.totp_provisioning(device=device)
            if device is not None
            else services.totp_enrol(user=request.user)
        )
        context = {
            **self.each_context(request),
            "title": "Set up two-factor authentication",
            "form": form,
            "qr_png": base64.b64encode(enrolment.qr_png).decode("ascii"),
            "provisioning_uri": enrolment.provisioning_uri,
            "next": next_url,
        }
        response = render(request, "security/admin/mfa_enrol.html", context)
        response["Cache-Control"] = "no-store"
        return response


class EnrolForm(forms.Form):
    code = forms.CharField(
        max_length=64,
        label="Code from the app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _safe_next(request: HttpRequest) -> str | None:
    next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return None


def _to_enrolment(request: HttpRequest, site_name: str) -> HttpResponse:
    enrol = reverse("admin:mfa_enrol", current_app=site_name)
    query = urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
    return HttpResponseRedirect(f"{enrol}?{query}")


# The project's admin site is Django's default instance: giving it this class keeps every
# registration and URL, and is how django-otp documents enabling OTPAdminSite.
admin.site.__class__ = LuminaAdminSite


# --- Device pages for support: who has what, never a key or a code --------------------


class DeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at", "failures")
    list_filter = ("confirmed",)
    search_fields = ("user__email",)
    list_select_related = ("user",)
    ordering = ("user__email",)
    actions = ("reset_mfa",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at", "failures")
    readonly_fields = fields

    @admin.display(description="failed attempts")
    def failures(self, device) -> int:
        return device.throttling_failure_count

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # removal goes through the audited reset action

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("reset_mfa", None)
        return actions

    @admin.action(
        description="Reset MFA of the selected devices' users (removes all their devices)"
    )
    def reset_mfa(self, request: HttpRequest, queryset: QuerySet) -> None:
        users = {device.user for device in queryset.select_related("user")}
        for user in users:
            services.mfa_reset(user=user, actor_id=request.user.pk)
        self.message_user(request, f"MFA reset for {len(users)} user(s).", messages.SUCCESS)


class TotpDeviceAdmin(DeviceAdmin):
    pass


class BackupCodesDeviceAdmin(DeviceAdmin):
    list_display = (*DeviceAdmin.list_display, "codes_remaining")
    fields = (*DeviceAdmin.fields, "codes_remaining")
    readonly_fields = fields

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).annotate(remaining=Count("codes"))

    @admin.display(description="codes remaining", ordering="remaining")
    def codes_remaining(self, device) -> int:
        return device.remaining


for model, model_admin in (
    (TotpDevice, TotpDeviceAdmin),
    (BackupCodesDevice, BackupCodesDeviceAdmin),
):
    admin.site.register(model, model_admin)
