"""The memory context's tables, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------

# --- Memory records (mc) -----------------------------------------------------------------

# --- Compression (mx) -------------------------------------------------------------------
from lumina.memory.models.compression import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
