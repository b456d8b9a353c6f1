"""Admin console pages of the providers context, one module per area."""

from lumina.providers.admin import registry, usage  # noqa: F401
