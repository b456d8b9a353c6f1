"""UI context: collaborative documents and visualizations."""

from django.apps import AppConfig


class UIConfig(AppConfig):
    name = "lumina.ui"
    label = "ui"
    verbose_name = "UI"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes, object grants and
        # policies. Roles do not open other people's documents (see
        # lumina.ui.selectors.document_access): a role's documents.edit lets one write
        # documents of one's own (Developer, Admin); read, comment, edit and share are
        # granted per document by sharing; documents.manage (Owner-only by default: Owner's
        # *) opens everyone's. Viewer's *.read covers documents.read alone.
        from lumina.kernel.permissions import declare

        # Event classes must be registered before any delivery.
        from lumina.ui import events  # noqa: F401

        declare("documents.read", "Open documents")
        declare("documents.comment", "Comment on documents")
        declare("documents.edit", "Write documents: create your own, edit those shared to edit")
        declare("documents.share", "Share documents with others")
        declare("documents.manage", "Open, change, share and delete everyone's documents")

        # Realtime notifications: handlers subscribed before any delivery; pushes from
        # the web server's own event loop once it runs.
        from lumina.kernel import lifecycle
        from lumina.ui import handlers  # noqa: F401
        from lumina.ui.realtime.fanout import adopt_server_loop

        lifecycle.on_startup(adopt_server_loop, where=(lifecycle.WEB,))

        declare("visualizations.read", "See and render your own charts and the built-in ones")
        declare("visualizations.edit", "Save, change and delete your own charts")
        declare("visualizations.manage", "See, change and delete everyone's charts")

        # The admin's "View site" link opens the console, which links back to the admin.
        from django.contrib import admin

        admin.site.site_url = "/console/"
