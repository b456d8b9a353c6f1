"""Subscriptions of the providers context, imported from the app's ``ready()``."""

from lumina.providers.handlers import registry, usage  # noqa: F401
