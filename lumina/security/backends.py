"""Django authentication backend that applies Lumina's lockout and audit to every login.

``django.contrib.auth.authenticate`` (the admin console's login form, ``login()`` in
tests, any third-party view) goes through ``user_authenticate``, so a password
guessed on the admin page counts towards the same lockout as the REST login and is
audited the same way.

It answers no permission question: Django's model permissions (``user_permissions``,
group permissions, ``has_perm``) grant nothing in Lumina, where ``authorize`` decides.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from lumina.security.services.auth import (
    AccountLockedError,
    InvalidCredentialsError,
    user_authenticate,
)


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        email = username if username is not None else kwargs.get("email")
        if email is None or password is None:
            return None
        ip_address = request.META.get("REMOTE_ADDR") if request is not None else None
        try:
            return user_authenticate(email=email, password=password, ip_address=ip_address).user
        except AccountLockedError:
            # Stops Django from trying further backends: a locked account stays locked.
            raise PermissionDenied("account locked") from None
        except InvalidCredentialsError:
            return None

    # Django's permission API: nothing is granted here (see the module docstring).
    def get_user_permissions(self, user_obj, obj=None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj, obj=None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        return set()

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return False

    def has_module_perms(self, user_obj, app_label) -> bool:
        return False
