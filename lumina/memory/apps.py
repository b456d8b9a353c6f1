from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "lumina.memory"
    label = "memory"
    verbose_name = "Memory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        from lumina.kernel.permissions import declare

        declare("memory.read", "Read and search memories")
        declare("memory.write", "Store and change memories")
        declare("memory.delete", "Delete memories")
