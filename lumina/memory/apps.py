from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "lumina.memory"
    label = "memory"
    verbose_name = "Memory"
    default_auto_field = "django.db.models.BigAutoField"
