"""The events the memory context publishes, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.events.vectors import *  # noqa: F403

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.events.records import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.events.topics import *  # noqa: F403
