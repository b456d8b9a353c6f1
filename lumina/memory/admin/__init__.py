"""Admin console pages of the memory context, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.admin import records  # noqa: F401

# --- Topics and graph (mg) -------------------------------------------------------------
