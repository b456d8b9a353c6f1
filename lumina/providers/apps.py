from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "lumina.providers"
    label = "providers"
    verbose_name = "Providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        from lumina.kernel.permissions import declare

        # Event classes must be registered, and handlers subscribed, before any delivery.
        from lumina.providers import events, handlers  # noqa: F401

        declare("providers.read", "See providers, their models and health")
        declare("providers.add", "Register providers")
        declare("providers.change", "Change provider settings and credentials")
        declare("providers.delete", "Remove providers")
        declare("providers.use", "Call models through providers")
        declare("providers.usage.read_all", "See everyone's usage, cost reports and budgets")

        # Registry: a fresh install has the offline ``local`` provider after ``migrate``.
        from django.db.models.signals import post_migrate

        from lumina.providers.services.local import local_provider_ensure_after_migrate

        post_migrate.connect(
            local_provider_ensure_after_migrate, sender=self, dispatch_uid="providers.local"
        )

        # Shutdown: buffered usage is written (any process that served models), after the
        # pooled provider connections of the web server's loop are closed (hooks run in
        # reverse order of registration).
        from lumina.kernel import lifecycle

        lifecycle.on_shutdown(usage_write_buffered)
        lifecycle.on_shutdown(provider_sessions_close, where=(lifecycle.WEB,))


def usage_write_buffered() -> None:
    """Stop the usage ledger's writer thread and write what it still holds."""
    from lumina.providers.services.usage import usage_writer_stop

    usage_writer_stop(flush=True)


async def provider_sessions_close() -> None:
    """Close this event loop's pooled connections to providers and the breaker's Redis."""
    from lumina.providers.adapters.http import close_sessions
    from lumina.providers.resilience import circuit_breaker

    await close_sessions()
    await circuit_breaker().aclose()
