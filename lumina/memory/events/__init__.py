"""The events the memory context publishes, one module per area."""
# ruff: noqa: I001 (imports stay in their areas' sections, not in alphabetical order)

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.events.vectors import *  # noqa: F403

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.events.records import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.events.topics import *  # noqa: F403
