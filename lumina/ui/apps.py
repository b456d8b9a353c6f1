from django.apps import AppConfig


class UIConfig(AppConfig):
    name = "lumina.ui"
    label = "ui"
    verbose_name = "UI"
    default_auto_field = "django.db.models.BigAutoField"
