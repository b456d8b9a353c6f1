"""Reads of the ui context, one module per area."""
