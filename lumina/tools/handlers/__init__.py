"""Subscriptions of the tools context, imported from the app's ``ready()``."""
