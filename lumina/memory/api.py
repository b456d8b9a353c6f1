"""The memory context's public interface: the only module other contexts may import.

Plain values and frozen dataclasses in and out, never models or querysets. Every call
takes the ``Actor`` it acts for and is authorised like the REST endpoint that does the
same thing. Sections per area; each area adds its names to ``__all__`` in its section.
"""

from __future__ import annotations

__all__: list[str] = []

# --- Vectors (mv) ----------------------------------------------------------------------


# --- Memory records, import, search (mc) -------------------------------------------------


# --- Compression, auto-recording (mx) ----------------------------------------------------


# --- Topics and graph (mg) -------------------------------------------------------------
