"""The memory context's tables, one module per area."""
# ruff: noqa: I001 (imports stay in their areas' sections, not in alphabetical order)

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.models.vectors import *  # noqa: F403

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.models.records import *  # noqa: F403

# --- Compression (mx) -------------------------------------------------------------------
from lumina.memory.models.compression import *  # noqa: F403

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.models.topics import *  # noqa: F403
