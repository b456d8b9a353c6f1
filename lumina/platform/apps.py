from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "lumina.platform"
    label = "platform"
    verbose_name = "Platform"
