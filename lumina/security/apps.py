from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "lumina.security"
    label = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Event classes must be registered, and handlers subscribed, before any delivery.
        from lumina.security import events  # noqa: F401
