"""Subscriptions of the ui context, imported from the app's ``ready()``."""

from lumina.ui.handlers import notifications  # noqa: F401
