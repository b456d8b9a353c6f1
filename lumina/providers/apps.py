from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "lumina.providers"
    label = "providers"
    verbose_name = "Providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        from lumina.kernel.permissions import declare

        declare("providers.read", "See providers, their models and health")
        declare("providers.add", "Register providers")
        declare("providers.change", "Change provider settings and credentials")
        declare("providers.delete", "Remove providers")
        declare("providers.use", "Call models through providers")
