"""The events the memory context publishes, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.events.vectors import *  # noqa: F403

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.events.records import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
