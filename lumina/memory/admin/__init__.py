"""Admin console pages of the memory context, one module per area."""

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.admin import vectors  # noqa: F401  # isort: skip

# --- Memory records (mc) -----------------------------------------------------------------
from lumina.memory.admin import records  # noqa: F401

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.admin import topics  # noqa: F401  # isort: skip
