"""The memory context's routes under /api/v1/, gathered from each area's module."""

urlpatterns: list = []

# --- Vectors (mv) ----------------------------------------------------------------------
from lumina.memory.http import vectors  # noqa: E402

urlpatterns += vectors.urlpatterns

# --- Memory records, import, search (mc) -------------------------------------------------
from lumina.memory.http import records  # noqa: E402

urlpatterns += records.urlpatterns

# --- Compression, auto-recording (mx) ----------------------------------------------------
from lumina.memory.http import compression  # noqa: E402

urlpatterns += compression.urlpatterns

# --- Topics and graph (mg) -------------------------------------------------------------
from lumina.memory.http import topics  # noqa: E402

urlpatterns += topics.urlpatterns
