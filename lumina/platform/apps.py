from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "lumina.platform"
    label = "platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from lumina.kernel.permissions import declare

        # The outbox holds every context's events, security events included.
        declare("platform.events.read", "See the event outbox: pending, failed, delivered")
        declare("platform.events.replay", "Deliver an outbox event again")
