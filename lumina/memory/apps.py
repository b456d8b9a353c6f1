from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "lumina.memory"
    label = "memory"
    verbose_name = "Memory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        # Built-in roles (security's BUILTIN_ROLES): Viewer has memory.read (``*.read``),
        # Developer memory.read and memory.write, Admin everything (``memory.*``).
        from lumina.kernel.permissions import declare

        # Event classes must be registered, and handlers subscribed, before any delivery.
        from lumina.memory import events, handlers  # noqa: F401

        declare("memory.read", "Read and search your own memories and collections")
        declare("memory.write", "Store, change and delete your own memories and collections")
        declare("memory.manage", "Read and change everyone's memories, scopes and collections")
