"""The events the memory context publishes, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.events.records import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
