from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate

# The permissions the security context checks (see lumina.kernel.permissions).
SECURITY_PERMISSIONS = (
    ("security.users.manage", "Create, change and deactivate users"),
    ("security.tokens.manage", "Issue and revoke other users' API tokens"),
    ("security.roles.manage", "Manage roles, role assignments and object grants"),
    ("security.policies.manage", "Write, change and test authorisation policies"),
    ("security.secrets.encrypt", "Encrypt secrets with Lumina's keys"),
    ("security.secrets.decrypt", "Decrypt stored secrets"),
    ("security.keys.rotate", "Rotate the encryption keys"),
    ("security.keys.read", "See encryption key versions and data key counts"),
    ("security.audit.read", "Read and verify the audit log"),
    ("security.identity_providers.manage", "Add, change and remove OIDC identity providers"),
    ("security.sessions.manage", "List and end other users' sessions"),
)


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin, with Lumina's site (second factor, MFA enrolment) as ``admin.site``.

    Listed in INSTALLED_APPS instead of ``django.contrib.admin``.
    """

    default = False  # not the app config of lumina.security
    default_site = "lumina.security.admin_site.LuminaAdminSite"


class SecurityConfig(AppConfig):
    name = "lumina.security"
    label = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lumina.kernel.permissions import declare

        # Event classes must be registered, and handlers subscribed, before any delivery;
        # the audit handlers subscribe to every event class, so they come after the events.
        from lumina.security import events, handlers  # noqa: F401
        from lumina.security.services.authorization import connect_cache_invalidation
        from lumina.security.services.tokens import connect_user_invalidation

        for permission, description in SECURITY_PERMISSIONS:
            declare(permission, description)
        # Group membership edits (admin console, other areas) must reach authorize()'s caches.
        connect_cache_invalidation()
        connect_user_invalidation()
        post_migrate.connect(_seed_builtin_roles, sender=self)
        _export_audit_head_periodically()
        _publish_refused_tokens_periodically()
        from lumina.security.http.middleware import connect_sign_in_time

        connect_sign_in_time()


def _export_audit_head_periodically() -> None:
    """In-process mode: the relay thread exports the signed head (beat does with Celery)."""
    from django.conf import settings

    from lumina.kernel.relay import run_periodically
    from lumina.security.services.audit_head import audit_head_export

    if settings.LUMINA_AUDIT_HEAD_INTERVAL:
        run_periodically(
            "security.audit-head", settings.LUMINA_AUDIT_HEAD_INTERVAL, audit_head_export
        )


def _publish_refused_tokens_periodically() -> None:
    """Refused-token counts live in the web process: its own timer publishes them."""
    from lumina.kernel import lifecycle
    from lumina.security.services.token_refusals import (
        refusals_timer_start,
        refusals_timer_stop,
    )

    lifecycle.on_startup(refusals_timer_start, where=(lifecycle.WEB,))
    lifecycle.on_shutdown(refusals_timer_stop, where=(lifecycle.WEB,))


def _seed_builtin_roles(**kwargs) -> None:
    # After every migrate, not once in a migration: built-in roles follow the permission
    # catalogue, which grows as contexts declare new permissions.
    from lumina.security.services.rbac import roles_seed_builtin

    roles_seed_builtin()
