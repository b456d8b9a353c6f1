"""UI context: collaborative documents and visualizations."""

from django.apps import AppConfig


class UIConfig(AppConfig):
    name = "lumina.ui"
    label = "ui"
    verbose_name = "UI"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        from lumina.kernel.permissions import declare

        declare("documents.read", "Open documents")
        declare("documents.edit", "Edit documents")
        declare("documents.share", "Share documents with others")

        # Realtime notifications: handlers subscribed before any delivery; pushes from
        # the web server's own event loop once it runs.
        from lumina.kernel import lifecycle
        from lumina.ui import handlers  # noqa: F401
        from lumina.ui.realtime.fanout import adopt_server_loop

        lifecycle.on_startup(adopt_server_loop, where=(lifecycle.WEB,))
