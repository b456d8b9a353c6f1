"""Subscriptions of the memory context, imported from the app's ``ready()``."""

# --- Memory records (mc) -----------------------------------------------------------------
# --- Auto-recording (mx) -----------------------------------------------------------------
# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.handlers import (
    autorecord,  # noqa: F401
    records,  # noqa: F401
    topics,  # noqa: F401
)
