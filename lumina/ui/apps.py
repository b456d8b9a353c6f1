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
