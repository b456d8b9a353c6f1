"""The page a password reset link opens: Django's reset form, setting the password through
``services.passwords`` (validators, audit, every session ended)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.urls import path, reverse_lazy

from lumina.kernel.errors import ApplicationError
from lumina.security.http.actors import client_ip
from lumina.security.services.passwords import password_reset_confirm


class PasswordResetConfirmPage(auth_views.PasswordResetConfirmView):
    """Django keeps the token in the session and redirects to a URL without it, so the
    token does not leak through the Referer header."""

    success_url = reverse_lazy("password-reset-done")

    def form_valid(self, form):
        token = self.request.session.get(auth_views.INTERNAL_RESET_SESSION_TOKEN, "")
        try:
            password_reset_confirm(
                uid=self.kwargs["uidb64"],
                token=token,
                new_password=form.cleaned_data["new_password1"],
                ip_address=client_ip(self.request),
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return self.form_invalid(form)
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDonePage(auth_views.PasswordResetCompleteView):
    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["login_url"] = reverse_lazy("admin:login")
        return context


urlpatterns = [
    path(
        "password-reset/<uidb64>/<token>/",
        PasswordResetConfirmPage.as_view(),
        name="password-reset-confirm",
    ),
    path("password-reset/done/", PasswordResetDonePage.as_view(), name="password-reset-done"),
]
