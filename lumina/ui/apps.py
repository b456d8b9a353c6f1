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
        declare("visualizations.read", "See and render your own charts and the built-in ones")
        declare("visualizations.edit", "Save, change and delete your own charts")
        declare("visualizations.manage", "See, change and delete everyone's charts")

        # The admin's "View site" link opens the console, which links back to the admin.
        from django.contrib import admin

        admin.site.site_url = "/console/"
