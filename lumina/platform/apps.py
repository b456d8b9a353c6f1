import gc

from django.apps import AppConfig

# Readiness details (dependency versions, error text) are for operators only.
HEALTH_READ = "platform.health.read"


class PlatformConfig(AppConfig):
    name = "lumina.platform"
    label = "platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from lumina.kernel import lifecycle
        from lumina.kernel.permissions import declare
        from lumina.platform.asgi import ReusedThreadsASGIHandler

        # The outbox holds every context's events, security events included.
        declare("platform.events.read", "See the event outbox: pending, failed, delivered")
        declare("platform.events.replay", "Deliver an outbox event again")

        from lumina.platform.http import strict

        declare(HEALTH_READ, "See readiness details: dependency versions and error text")
        strict.install()  # JSON bodies keep the types the OpenAPI document promises
        # The request threads' database connections close with the server.
        lifecycle.on_shutdown(ReusedThreadsASGIHandler.close_idle_threads, where=(lifecycle.WEB,))
        # The last start-up hook (platform is the last app): see ``gc_freeze``.
        lifecycle.on_startup(gc_freeze, where=(lifecycle.WEB,))


def gc_freeze() -> None:
    """Everything loaded by now lives as long as the process: the collector stops scanning
    it, so a full collection under load walks only what requests allocate."""
    gc.collect()
    gc.freeze()
