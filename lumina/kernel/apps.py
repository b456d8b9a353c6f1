from django.apps import AppConfig


class KernelConfig(AppConfig):
    name = "lumina.kernel"
    label = "kernel"
    verbose_name = "Kernel"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lumina.kernel import lifecycle
        from lumina.kernel.relay import relay_start, relay_stop

        # The in-process transport's retries: the web process runs the relay thread.
        lifecycle.on_startup(relay_start, where=(lifecycle.WEB,))
        lifecycle.on_shutdown(relay_stop, where=(lifecycle.WEB,))
