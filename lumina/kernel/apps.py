from django.apps import AppConfig


class KernelConfig(AppConfig):
    name = "lumina.kernel"
    label = "kernel"
    verbose_name = "Kernel"
    default_auto_field = "django.db.models.BigAutoField"
