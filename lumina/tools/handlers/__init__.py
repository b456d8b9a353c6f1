"""Subscriptions of the tools context, imported from the app's ``ready()``."""

from lumina.tools.handlers import executions  # noqa: F401
